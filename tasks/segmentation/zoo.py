"""The segmentation zoo: every model of mmsegmentation's shipped metafiles, under the name mmseg
gives it (e.g. ``segformer_mit-b0_8xb1-160k_cityscapes-1024x1024``), with its config, checkpoint
URL and published mIoU; plus models a user describes in a ``--zoo`` JSON file (own configs and
checkpoints).

Metafiles and configs ship inside the mmsegmentation wheel (``mmseg/.mim``), so nothing is retyped.
They are read without importing mmseg or torch (listing the zoo takes a fraction of a second);
building a model imports them. OpenMMLab checkpoint names end in the first 8 hex digits of their
sha256, which is checked.
"""
from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

from committee_tasks.core.compat import NEEDS_FULL_MMCV, import_mmseg, mmseg_folder
from committee_tasks.core.errors import CommitteeError
from committee_tasks.core.lazy_call import lazy_call
from committee_tasks.core.zoo import WeightsSource, ZooEntry
from committee_tasks.core.zoo_files import read_zoo_file, weights_from_spec

if TYPE_CHECKING:  # imported when a model is built or loaded
    import torch

TASK = "segmentation"
ORIGINAL_IMAGE = lazy_call(f"{__package__}.members:OriginalImage")  # every member's preprocessing

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
    root = mmseg_folder() / ".mim"
    if not (root / "configs").is_dir():
        raise CommitteeError(f"mmsegmentation's configs are not in {root}; reinstall mmsegmentation==1.2.2 "
                             "from its wheel")
    return root


def load_state_dict(path: Path) -> Mapping[str, torch.Tensor]:
    """The state dict of an mmseg checkpoint ({"meta": ..., "state_dict": ...}) or a bare one."""
    import torch

    from committee_tasks.core.members import load_checkpoint

    checkpoint = load_checkpoint(path, "{'state_dict': model.state_dict()}")
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
                     num_classes=num_classes, dataset=dataset, input_size=(3,), preprocessing=ORIGINAL_IMAGE,
                     metrics=dict(metrics), state_dict_loader=load_state_dict, source=source,
                     notes={"config": str(config)})
    return SegmentationModel(entry, config)


@functools.lru_cache(maxsize=None)
def metafile_models() -> dict[str, SegmentationModel]:
    import yaml  # a dependency of mmengine

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml's: 8x faster, same result
    root = mim_root()
    models = {}
    for metafile in sorted((root / "configs").glob("*/metafile.yaml")):
        spec = yaml.load(metafile.read_text(), Loader=loader) or {}
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
    folder = Path(path).parent
    return read_zoo_file(path, '{"name": ..., "config": ..., "weights": ...}',
                         lambda item: _model_from_spec(item, folder))


def _model_from_spec(item: Mapping[str, Any], folder: Path) -> SegmentationModel:
    config = (folder / item["config"]).resolve()
    if not config.is_file():
        raise ValueError(f"config {config} does not exist")
    return _entry(item["name"], config, weights_from_spec(item), _config_classes(config),
                  item.get("dataset", "?"), item.get("metrics", {}), "user zoo file")


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
