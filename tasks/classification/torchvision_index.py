"""The torchvision part of the classification zoo, read from torchvision's own weights API.

Every classification model torchvision lists, under ``<model>`` (its DEFAULT weights) and
``<model>.<weights tag>`` (any other), with the published figures of its weights' ``meta``. The
records ship in ``torchvision_index.json`` (see `committee_tasks.core.zoo_index`) so listing the
zoo imports no torchvision; builders and preprocessing import it when called.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from committee_tasks.core.lazy_call import lazy_call
from committee_tasks.core.zoo import WeightsSource, ZooEntry
from committee_tasks.core.zoo_index import PackageIndex

TASK = "classification"


def _record(name: str, weights) -> dict[str, Any]:
    """What the zoo keeps of one torchvision weights enum value."""
    meta = weights.meta
    metrics = meta["_metrics"].get("ImageNet-1K", {})
    # torch.hub file names end in the first 8+ hex digits of the file's sha256
    stem = weights.url.rsplit("/", 1)[-1].rsplit(".", 1)[0]
    # The architecture the weights need (torchvision sets these itself when it loads weights).
    arch: dict[str, Any] = {"num_classes": len(meta["categories"])}
    if name.startswith("vit_"):
        arch["image_size"] = meta["min_size"][0]
    elif name.startswith("maxvit_"):
        arch["input_size"] = meta["min_size"]
    elif name.split(".")[0] in ("googlenet", "inception_v3"):
        # ported from TF: the weights expect the model to re-normalise its input (transform_input)
        arch.update(transform_input=True, aux_logits=True, init_weights=False)
    return {"name": name, "weights": str(weights), "arch": arch, "url": weights.url,
            "sha256": stem.rsplit("-", 1)[-1] if "-" in stem else None, "num_classes": len(meta["categories"]),
            "crop": weights.transforms().crop_size[0], "macs": round(meta["_ops"] * 1e9),
            "params": meta["num_params"], "metrics": {"top-1": metrics.get("acc@1"), "top-5": metrics.get("acc@5")}}


def read_torchvision() -> list[dict[str, Any]]:
    """One record per zoo name, from the installed torchvision (imports it: seconds)."""
    import torchvision

    records = []
    for model in torchvision.models.list_models(module=torchvision.models):
        enum = torchvision.models.get_model_weights(model)
        records.append(_record(model, enum.DEFAULT))
        for weights in enum:
            if weights.meta.get("categories") is None:  # vgg16 IMAGENET1K_FEATURES: no classifier
                continue
            records.append(_record(f"{model}.{weights.name.lower()}", weights))
    return records


INDEX = PackageIndex(Path(__file__).resolve().with_name("torchvision_index.json"), "torchvision", read_torchvision)


def _entry(record: dict[str, Any]) -> ZooEntry:
    url = record["url"]
    arch = {k: tuple(v) if isinstance(v, list) else v for k, v in record["arch"].items()}
    return ZooEntry(
        name=record["name"], task=TASK,
        builder=lazy_call("torchvision.models:get_model", record["name"].split(".")[0], weights=None, **arch),
        weights=WeightsSource(url.rsplit("/", 1)[-1], url, record["sha256"]),
        num_classes=record["num_classes"], dataset="imagenet", input_size=(3, record["crop"], record["crop"]),
        preprocessing=lazy_call(f"torchvision.models:{record['weights']}.transforms"),
        macs=record["macs"], params=record["params"], metrics=record["metrics"],
        source=f"torchvision {record['weights']}",
    )


def torchvision_entries() -> dict[str, ZooEntry]:
    """The zoo entries of every torchvision classification model and weights."""
    return {record["name"]: _entry(record) for record in INDEX.load()}
