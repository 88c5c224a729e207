"""The video zoo: the Kinetics-400 models of ``pytorchvideo.models.hub``, each with the sampling
recipe and test protocol of the pytorchvideo / PySlowFast model zoo, plus models users describe
in a ``--zoo`` JSON file (their own checkpoints of pytorchvideo architectures).

Weights URLs are read from pytorchvideo's own hub modules (not retyped). pytorchvideo publishes
no checksums: the sha256 of the file actually used is recorded in the prediction cache.

MACs: ``ZooEntry.macs`` is the published figure *per view* at ``input_size``. For X3D that is the
X3D paper's (= PySlowFast's) 0.60 / 1.96 / 4.73 / 18.37 GMACs at the sizes the hub builds them
for (4x160, 13x160, 16x224, 16x312); the pytorchvideo zoo table lists 0.91 / 2.96 / 6.72 / 26.64,
measured at other sizes. For the ResNet-style models it is the pytorchvideo zoo's figure at the
256-pixel test crop. Reports always show the toolkit's own count at the input actually run.
"""
from __future__ import annotations

import functools
import importlib
import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Mapping

import torch

from committee_tasks.core.compat import import_pytorchvideo
from committee_tasks.core.errors import CommitteeError
from committee_tasks.core.zoo import WeightsSource, ZooEntry

from .decoding import VideoViews
from .recipes import SamplingRecipe

TASK = "video"
ZOO_SOURCE = "pytorchvideo model zoo (Kinetics-400), facebookresearch/pytorchvideo"


@dataclass(frozen=True)
class VideoModel:
    """A zoo entry plus what the video task needs on top: the default (multi-crop) recipe and the
    crop used when a single spatial crop is asked for (PySlowFast's TEST_CROP_SIZE for 1 crop)."""

    entry: ZooEntry
    recipe: SamplingRecipe
    single_crop_size: int

    def recipe_for(self, clips: int | None = None, crops: int | None = None) -> SamplingRecipe:
        """The recipe for ``clips`` x ``crops`` views: one crop uses the single-crop size, three
        crops the larger multi-crop size (short side = crop, as PySlowFast tests)."""
        clips = clips or self.recipe.clips
        crops = crops or self.recipe.crops
        if crops == self.recipe.crops:
            return replace(self.recipe, clips=clips)
        multi = self.recipe.crop_size if self.recipe.crops == 3 else self.single_crop_size
        crop = self.single_crop_size if crops == 1 else multi
        return replace(self.recipe, clips=clips, crops=crops, crop_size=crop, short_side=crop)


# name: (hub module, frames, sampling rate, 3-crop size, 1-crop size, top-1, GMACs per view,
#        (frames, size) of that figure, SlowFast alpha, (clips, crops))
HUB_MODELS: dict[str, tuple] = {
    "x3d_xs": ("x3d", 4, 12, 182, 160, 69.12, 0.60, (4, 160), None, (10, 3)),
    "x3d_s": ("x3d", 13, 6, 182, 160, 73.33, 1.96, (13, 160), None, (10, 3)),
    "x3d_m": ("x3d", 16, 5, 256, 224, 75.94, 4.73, (16, 224), None, (10, 3)),
    "x3d_l": ("x3d", 16, 5, 356, 312, 77.44, 18.37, (16, 312), None, (10, 3)),
    "c2d_r50": ("resnet", 8, 8, 256, 224, 71.46, 25.89, (8, 256), None, (10, 3)),
    "i3d_r50": ("resnet", 8, 8, 256, 224, 73.27, 37.53, (8, 256), None, (10, 3)),
    "slow_r50": ("resnet", 8, 8, 256, 224, 74.58, 54.52, (8, 256), None, (10, 3)),
    "slowfast_r50": ("slowfast", 32, 2, 256, 224, 76.94, 65.71, (32, 256), 4, (10, 3)),
    "slowfast_r101": ("slowfast", 32, 2, 256, 224, 77.90, 127.20, (32, 256), 4, (10, 3)),
    "slowfast_16x8_r101_50_50": ("slowfast", 64, 2, 256, 224, 78.70, 215.61, (64, 256), 4, (10, 3)),
    "csn_r101": ("csn", 32, 2, 256, 224, 77.00, 75.62, (32, 256), None, (10, 3)),
    "r2plus1d_r50": ("r2plus1d", 16, 4, 256, 224, 76.01, 76.45, (16, 256), None, (10, 3)),
    # MViT has fixed-size position embeddings: 224 only; the zoo tests 5 clips x 1 crop
    "mvit_base_16x4": ("vision_transformers", 16, 4, 224, 224, 78.85, 70.80, (16, 224), None, (5, 1)),
    "mvit_base_32x3": ("vision_transformers", 32, 3, 224, 224, 80.30, 170.37, (32, 224), None, (5, 1)),
}

# Architectures a --zoo file may name: pytorchvideo's model builders and hub functions.
CREATE_FUNCTIONS = {"create_x3d": "x3d", "create_resnet": "resnet", "create_slowfast": "slowfast",
                    "create_csn": "csn", "create_r2plus1d": "r2plus1d",
                    "create_multiscale_vision_transformers": "vision_transformers"}
BUILDERS = (*CREATE_FUNCTIONS, *HUB_MODELS)


def load_pytorchvideo_checkpoint(path: Path) -> Mapping[str, torch.Tensor]:
    """The state dict of a pytorchvideo / PySlowFast checkpoint (``{"model_state": ...}``) or of
    a plain state-dict file."""
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise CommitteeError(f"cannot load {path} as a weights-only checkpoint ({type(err).__name__}: {err}); "
                             "re-save it as {'model_state': model.state_dict()}") from err
    if isinstance(checkpoint, dict) and "model_state" in checkpoint:
        return checkpoint["model_state"]
    if isinstance(checkpoint, dict) and all(isinstance(v, torch.Tensor) for v in checkpoint.values()):
        return checkpoint
    keys = list(checkpoint)[:5] if isinstance(checkpoint, dict) else type(checkpoint).__name__
    raise CommitteeError(f"{path} holds no 'model_state' state dict (found {keys}); save the model as "
                         "{'model_state': model.state_dict()}, the pytorchvideo checkpoint format")


def _hub_function(name: str) -> Callable[..., torch.nn.Module]:
    import_pytorchvideo()
    from pytorchvideo.models import hub

    return getattr(hub, name)


def _build_hub(name: str) -> torch.nn.Module:
    return _hub_function(name)(pretrained=False)


@functools.lru_cache(maxsize=None)
def hub_models() -> dict[str, VideoModel]:
    import_pytorchvideo()
    models = {}
    for name, (module, frames, rate, crop3, crop1, top1, gmacs, (mt, ms), alpha, (clips, crops)) in HUB_MODELS.items():
        url = importlib.import_module(f"pytorchvideo.models.hub.{module}").checkpoint_paths[name]
        recipe = SamplingRecipe(frames=frames, sampling_rate=rate, short_side=crop3, crop_size=crop3,
                                clips=clips, crops=crops, slowfast_alpha=alpha)
        entry = ZooEntry(
            name=name, task=TASK, builder=functools.partial(_build_hub, name),
            weights=WeightsSource(url.rsplit("/", 1)[-1], url, None), num_classes=400, dataset="kinetics400",
            input_size=(3, mt, ms, ms), preprocessing=functools.partial(VideoViews, recipe),
            macs=int(round(gmacs * 1e9)), metrics={"top-1": top1}, state_dict_loader=load_pytorchvideo_checkpoint,
            source=ZOO_SOURCE,
            notes={"macs_per": "view", "views": f"{clips}x{crops}", "frames_x_rate": f"{frames}x{rate}",
                   "test_crop": crop3},
        )
        models[name] = VideoModel(entry, recipe, crop1)
    return models


def models_from_file(path: str | Path) -> dict[str, VideoModel]:
    """Models described in a JSON file::

        {"models": [{"name": "my_x3d", "builder": "create_x3d",
                     "kwargs": {"input_clip_length": 4, "input_crop_size": 64, "model_num_class": 3},
                     "weights": "my_x3d.pyth", "url": null, "sha256": null, "num_classes": 3,
                     "recipe": {"frames": 4, "sampling_rate": 2, "short_side": 64, "crop_size": 64,
                                "clips": 2, "crops": 1},
                     "single_crop_size": 64, "dataset": "my-videos", "metrics": {"top-1": 80.0}}]}

    ``builder`` names a pytorchvideo model builder (``create_x3d`` ...) or hub function
    (``x3d_m`` ...); ``weights`` is a file found in --weights-dir or the torch.hub cache (or
    downloaded from ``url``), in the pytorchvideo checkpoint format.
    """
    path = Path(path)
    try:
        spec = json.loads(path.read_text())
        items = spec["models"]
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise CommitteeError(f"cannot read zoo file {path} ({type(err).__name__}: {err}); expected "
                             '{"models": [{"name": ..., "builder": ..., "weights": ..., "recipe": {...}}]}') from err
    models = {}
    for item in items:
        name = item.get("name")
        try:
            models[name] = _model_from_spec(item)
        except (KeyError, TypeError, ValueError) as err:
            raise CommitteeError(f"zoo file {path}, model {name!r}: {type(err).__name__}: {err}") from err
    return models


def _model_from_spec(item: Mapping[str, Any]) -> VideoModel:
    builder_name = item["builder"]
    if builder_name not in BUILDERS:
        raise ValueError(f"unknown builder {builder_name!r}; valid: {', '.join(BUILDERS)}")
    recipe = SamplingRecipe(**{k: tuple(v) if isinstance(v, list) else v for k, v in item["recipe"].items()})
    kwargs = dict(item.get("kwargs", {}))
    weights = None
    if item.get("weights") or item.get("url"):
        file_name = item.get("weights") or item["url"].rsplit("/", 1)[-1]
        weights = WeightsSource(file_name, item.get("url"), item.get("sha256"))
    entry = ZooEntry(
        name=item["name"], task=TASK, builder=functools.partial(_build_custom, builder_name, kwargs),
        weights=weights, num_classes=int(item["num_classes"]), dataset=item.get("dataset", "?"),
        input_size=(3, recipe.frames, recipe.crop_size, recipe.crop_size),
        preprocessing=functools.partial(VideoViews, recipe), macs=item.get("macs"),
        metrics=dict(item.get("metrics", {})), state_dict_loader=load_pytorchvideo_checkpoint,
        source=item.get("source", "user zoo file"),
        notes={"macs_per": "view", "views": f"{recipe.clips}x{recipe.crops}"},
    )
    return VideoModel(entry, recipe, int(item.get("single_crop_size", recipe.crop_size)))


def _build_custom(builder_name: str, kwargs: Mapping[str, Any]) -> torch.nn.Module:
    import_pytorchvideo()
    if builder_name in HUB_MODELS:
        return _hub_function(builder_name)(pretrained=False, **kwargs)
    module = importlib.import_module(f"pytorchvideo.models.{CREATE_FUNCTIONS[builder_name]}")
    return getattr(module, builder_name)(**kwargs)

