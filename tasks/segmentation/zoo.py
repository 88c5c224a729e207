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
from pathlib import Path
from typing import TYPE_CHECKING, Mapping

from committee_tasks.core.compat import NEEDS_FULL_MMCV, import_mmseg, mmseg_folder
from committee_tasks.core.errors import CommitteeError
from committee_tasks.core.lazy_call import lazy_call
from committee_tasks.core.zoo import WeightsSource, ZooEntry

if TYPE_CHECKING:  # imported when a model is built or loaded
    import torch

TASK = "segmentation"
# notes key of an entry whose classes its mmseg config says, read only when the member is used:
# configs are Python files, executed by mmengine's Config.fromfile
CLASSES_FROM_CONFIG = "classes_from_config"
ORIGINAL_IMAGE = lazy_call(f"{__package__}.members:OriginalImage")  # every member's preprocessing

# Classes of the datasets mmseg's metafiles name (for listing; the config is the authority).
DATASET_CLASSES = {"Cityscapes": 19, "ADE20K": 150, "Pascal VOC 2012 + Aug": 21, "Pascal Context": 60,
                   "Pascal Context 59": 59, "COCO-Stuff 164k": 171, "COCO-Stuff 10k": 171, "LoveDA": 7,
                   "Potsdam": 6, "Vaihingen": 6, "iSAID": 16, "Synapse": 9, "CamVid": 11}


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


def config_entry(name: str, config: Path, weights: WeightsSource | None, num_classes: int, dataset: str,
                 metrics: Mapping[str, float], source: str) -> ZooEntry:
    """An mmseg model: built from its config (``notes["config"]``), reading mmseg checkpoints."""
    return ZooEntry(name=name, task=TASK, builder=functools.partial(_build, config), weights=weights,
                    num_classes=num_classes, dataset=dataset, input_size=(3,), preprocessing=ORIGINAL_IMAGE,
                    metrics=dict(metrics), state_dict_loader=load_state_dict, source=source,
                    notes={"config": str(config)})


@functools.lru_cache(maxsize=None)
def metafile_models() -> dict[str, ZooEntry]:
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
            models[name] = config_entry(name, root / config, weights, DATASET_CLASSES.get(dataset, -1), dataset,
                                        metrics, f"mmsegmentation metafile {metafile.parent.name}")
    return models


@functools.lru_cache(maxsize=None)
def _config_classes(config: Path) -> int:
    from mmengine import Config

    cfg = Config.fromfile(str(config))
    head = cfg.model.decode_head
    head = head[-1] if isinstance(head, (list, tuple)) else head
    return int(head.num_classes)


def config_classes(config: str | Path) -> int:
    """The number of classes an mmseg config's (last) decode head predicts (metafiles give only
    the dataset), read once per config file."""
    return _config_classes(Path(config))


@functools.lru_cache(maxsize=None)
def _config_digest(config: Path, text: bytes) -> str:
    import hashlib
    import json

    from mmengine import Config

    from .members import pipeline_resize

    cfg = Config.fromfile(str(config))  # with its _base_ files merged in
    used = {"model": cfg.model.to_dict(), "test_resize": pipeline_resize(cfg)}
    return hashlib.sha256(json.dumps(used, sort_keys=True, default=repr).encode()).hexdigest()


def config_digest(config: str | Path) -> str:
    """The sha256 of what an mmseg config sets that a member's outputs depend on: its model (with
    the data preprocessor and test_cfg: whole image or sliding window) and its test pipeline's
    Resize, as `members.Segmentor` reads them, after merging ``_base_`` files. Part of the cache
    key of a user's config, which may be edited between runs (mmseg's shipped configs are fixed by
    its pinned version). Read again when the file's text changes."""
    path = Path(config)
    return _config_digest(path, path.read_bytes())


def shipped_config(config: str | Path) -> bool:
    """Whether ``config`` is one of the installed mmsegmentation's own configs."""
    return Path(config).resolve().is_relative_to(mim_root().resolve())
