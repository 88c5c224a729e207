"""The segmentation zoo: every model of mmsegmentation's shipped metafiles, under the name mmseg
gives it (e.g. ``segformer_mit-b0_8xb1-160k_cityscapes-1024x1024``), with its config, checkpoint
URL and published mIoU; plus models a user describes in a ``--zoo`` JSON file (own configs and
checkpoints).

Metafiles and configs ship inside the mmsegmentation wheel (``mmseg/.mim``), so nothing is retyped.
OpenMMLab checkpoint names end in the first 8 hex digits of their sha256, which is checked.
"""
from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

import torch

from committee_tasks.core.compat import NEEDS_FULL_MMCV, import_mmseg
from committee_tasks.core.errors import CommitteeError
from committee_tasks.core.zoo import WeightsSource, ZooEntry

from .members import OriginalImage

TASK = "segmentation"

# Classes of the datasets mmseg's metafiles name (for listing; the config is the authority).
DATASET_CLASSES = {"Cityscapes": 19, "ADE20K": 150, "Pascal VOC 2012 + Aug": 21, "Pascal Context": 60,
                   "Pascal Context 59": 59, "COCO-Stuff 164k": 171, "COCO-Stuff 10k": 171, "LoveDA": 7,
                   "Potsdam": 6, "Vaihingen": 6, "iSAID": 16, "Synapse": 9, "CamVid": 11}


@dataclass(frozen=True)
class SegmentationModel:
    """A zoo entry plus its mmseg config file."""

    entry: ZooEntry
    config: Path


def mim_root() -> Path:
    import_mmseg()
    import mmseg

    root = Path(mmseg.__file__).parent / ".mim"
    if not (root / "configs").is_dir():
        raise CommitteeError(f"mmsegmentation's configs are not in {root}; reinstall mmsegmentation==1.2.2 "
                             "from its wheel")
    return root


def load_state_dict(path: Path) -> Mapping[str, torch.Tensor]:
    """The state dict of an mmseg checkpoint ({"meta": ..., "state_dict": ...}) or a bare one."""
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise CommitteeError(f"cannot load {path} as a weights-only checkpoint ({type(err).__name__}: "
                             f"{str(err)[:300]}); re-save it as {{'state_dict': model.state_dict()}}") from err
    state = checkpoint.get("state_dict", checkpoint) if isinstance(checkpoint, dict) else None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CommitteeError(f"{path} holds no state dict (mmseg checkpoints keep it under 'state_dict')")
    return {k.removeprefix("module."): v for k, v in state.items()}


def _build(config: Path) -> torch.nn.Module:
    import_mmseg()
    from mmseg.apis import init_model

    try:
        return init_model(str(config), checkpoint=None, device="cpu")
    except ModuleNotFoundError as err:  # a compiled mmcv op or mmdet
        folder = config.parent.name
        need = NEEDS_FULL_MMCV.get(folder, str(err))
        raise CommitteeError(f"{config.stem} needs {need}, which this installation lacks ({err}); it runs with a "
                             "full mmcv 2.1.0 build (compiled ops) or mmdet installed") from err


def _entry(name: str, config: Path, weights: WeightsSource | None, num_classes: int, dataset: str,
           metrics: Mapping[str, float], source: str) -> SegmentationModel:
    entry = ZooEntry(name=name, task=TASK, builder=functools.partial(_build, config), weights=weights,
                     num_classes=num_classes, dataset=dataset, input_size=(3,), preprocessing=OriginalImage,
                     metrics=dict(metrics), state_dict_loader=load_state_dict, source=source,
                     notes={"config": str(config)})
    return SegmentationModel(entry, config)


@functools.lru_cache(maxsize=None)
def metafile_models() -> dict[str, SegmentationModel]:
    import yaml  # a dependency of mmengine

    root = mim_root()
    models = {}
    for metafile in sorted((root / "configs").glob("*/metafile.yaml")):
        spec = yaml.safe_load(metafile.read_text()) or {}
        for item in spec.get("Models") or []:
            name, config, url = item.get("Name"), item.get("Config"), item.get("Weights")
            results = item.get("Results") or {}
            results = results[0] if isinstance(results, list) else results
            if not name or not config or not url:
                continue
            dataset = results.get("Dataset", "?")
            metrics = {"mIoU": float(v) for k, v in (results.get("Metrics") or {}).items() if k == "mIoU"}
            file_name = url.rsplit("/", 1)[-1]
            prefix = re.search(r"-([0-9a-f]{8})\.pth$", file_name)
            weights = WeightsSource(file_name, url, prefix[1] if prefix else None)
            models[name] = _entry(name, root / config, weights, DATASET_CLASSES.get(dataset, -1), dataset, metrics,
                                  f"mmsegmentation metafile {metafile.parent.name}")
    return models


def models_from_file(path: str | Path) -> dict[str, SegmentationModel]:
    """Models described in a JSON file::

        {"models": [{"name": "my_segformer", "config": "my_segformer.py",
                     "weights": "my_segformer.pth", "url": null, "sha256": null,
                     "dataset": "cityscapes", "metrics": {"mIoU": 70.1}}]}

    ``config`` is an mmseg config file (relative paths: to the JSON file); ``weights`` a
    checkpoint file found in --weights-dir or the torch.hub cache (or downloaded from ``url``).
    """
    path = Path(path)
    try:
        items = json.loads(path.read_text())["models"]
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise CommitteeError(f"cannot read zoo file {path} ({type(err).__name__}: {err}); expected "
                             '{"models": [{"name": ..., "config": ..., "weights": ...}]}') from err
    models = {}
    for item in items:
        try:
            config = (path.parent / item["config"]).resolve()
            if not config.is_file():
                raise ValueError(f"config {config} does not exist")
            weights = None
            if item.get("weights") or item.get("url"):
                weights = WeightsSource(item.get("weights") or item["url"].rsplit("/", 1)[-1], item.get("url"),
                                        item.get("sha256"))
            models[item["name"]] = _entry(item["name"], config, weights, _config_classes(config),
                                          item.get("dataset", "?"), item.get("metrics", {}), "user zoo file")
        except (KeyError, TypeError, ValueError) as err:
            raise CommitteeError(f"zoo file {path}, model {item.get('name')!r}: {type(err).__name__}: {err}") from err
    return models


def _config_classes(config: Path) -> int:
    from mmengine import Config

    cfg = Config.fromfile(str(config))
    head = cfg.model.decode_head
    head = head[-1] if isinstance(head, (list, tuple)) else head
    return int(head.num_classes)


def exact_entry(model: SegmentationModel) -> ZooEntry:
    """The entry with its number of classes read from the config (metafiles give the dataset only)."""
    from dataclasses import replace

    return replace(model.entry, num_classes=_config_classes(model.config))
