"""The timm part of the classification zoo, read from timm's own pretrained configs.

One entry per pretrained weight set with a classifier (``num_classes > 0``), named
``timm/<architecture>.<tag>`` (e.g. ``timm/convnext_tiny.fb_in1k``), with the preprocessing of
timm's default evaluation transform (``resolve_data_config`` without ``use_test_size``: the
config's ``input_size`` and ``crop_pct``, not its ``test_*`` ones). The records ship in
``timm_index.json`` (see `committee_tasks.core.zoo_index`): listing the zoo imports no timm
(seconds); builders, preprocessing and weight look-ups import what they need when called.

timm publishes neither MACs nor checksums in its configs: the toolkit counts MACs itself and
records the sha256 of the weight file actually used.
"""
from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from committee_tasks.core.lazy_call import LazyCall, lazy_call
from committee_tasks.core.zoo import WeightsSource, ZooEntry
from committee_tasks.core.zoo_index import PackageIndex

from .timm_members import HUB_FILES

TASK = "classification"
PREFIX = "timm/"
MEMBERS = f"{__package__}.timm_members"  # the lazy calls' module (imports torch when called)
# What a classifier's classes are, by their number (the rest: the tag says, e.g. CLIP embeddings)
DATASETS = {1000: "imagenet", 11821: "imagenet-12k", 21841: "imagenet-21k", 21842: "imagenet-21k",
            21843: "imagenet-21k", 11221: "imagenet-21k-p"}


def _record(cfg: dict[str, Any]) -> dict[str, Any]:
    """What the zoo keeps of one pretrained config (a `PretrainedCfg.to_dict()`)."""
    from timm.data import resolve_data_config

    data = resolve_data_config({}, pretrained_cfg=cfg)  # what timm's default eval transform uses
    keys = ("architecture", "tag", "hf_hub_id", "url", "num_classes", "license")
    record = {key: cfg.get(key) or None for key in keys}  # "" (no URL) as None
    record.update({key: data[key] for key in ("input_size", "interpolation", "crop_pct", "crop_mode", "mean", "std")})
    if cfg.get("hf_hub_filename"):
        record["hf_hub_filename"] = cfg["hf_hub_filename"]
    return record


def read_timm() -> list[dict[str, Any]]:
    """One record per pretrained classifier, from the installed timm (imports it: seconds)."""
    import timm
    from timm.models import get_pretrained_cfg

    records = []
    for name in timm.list_pretrained():
        cfg = get_pretrained_cfg(name).to_dict()
        if cfg.get("num_classes"):  # 0: a feature extractor without a classifier
            records.append(_record(cfg))
    return records


INDEX = PackageIndex(Path(__file__).resolve().with_name("timm_index.json"), "timm", read_timm)


def _weights(name: str, record: dict[str, Any]) -> WeightsSource:
    """The hub repository when there is one (timm prefers it), else the published URL."""
    repo_id = record["hf_hub_id"]
    if not repo_id:
        url = record["url"]
        return WeightsSource(url.rsplit("/", 1)[-1], url)
    files = (record["hf_hub_filename"],) if record.get("hf_hub_filename") else HUB_FILES
    return WeightsSource(f"{name}.safetensors",
                         locations=lazy_call(f"{MEMBERS}:weight_locations", name, repo_id, files),
                         fetch=lazy_call(f"{MEMBERS}:download_from_hub", repo_id, files))


LOAD_STATE_DICT = lazy_call("committee_tasks.core.checkpoints:read_state_dict")  # safetensors or weights_only


@functools.lru_cache(maxsize=None)
def _transform(input_size: tuple[int, ...], crop_pct: float, crop_mode: str, interpolation: str,
               mean: tuple[float, ...], std: tuple[float, ...]) -> LazyCall:
    """One (frozen) call per distinct preprocessing: most models share theirs, and listing stays fast."""
    return lazy_call(f"{MEMBERS}:timm_eval_transform", input_size=input_size, crop_pct=crop_pct, crop_mode=crop_mode,
                     interpolation=interpolation, mean=mean, std=std)


def _entry(record: dict[str, Any]) -> ZooEntry:
    name = f"{record['architecture']}.{record['tag']}"
    return ZooEntry(
        name=PREFIX + name, task=TASK,
        # the full name: timm builds a fixed-input-size model for the config's input size
        builder=lazy_call("timm:create_model", name, pretrained=False, num_classes=record["num_classes"]),
        weights=_weights(name, record),
        num_classes=record["num_classes"], dataset=DATASETS.get(record["num_classes"], record["tag"]),
        input_size=tuple(record["input_size"]),
        preprocessing=_transform(tuple(record["input_size"]), record["crop_pct"], record["crop_mode"],
                                 record["interpolation"], tuple(record["mean"]), tuple(record["std"])),
        state_dict_loader=LOAD_STATE_DICT,
        source=f"timm {name} ({record['license'] or 'licence not given'})",
    )


def timm_entries() -> dict[str, ZooEntry]:
    """The zoo entries of every pretrained timm classifier."""
    return {entry.name: entry for entry in map(_entry, INDEX.load())}
