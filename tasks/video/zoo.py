"""The video zoo: the Kinetics-400 models of ``pytorchvideo.models.hub``, each with the sampling
recipe and test protocol of the pytorchvideo / PySlowFast model zoo, plus models users describe
in a ``--zoo`` JSON file (their own checkpoints of pytorchvideo architectures).

Weights URLs are read from pytorchvideo's own hub modules (not retyped) into
``pytorchvideo_index.json`` (see `committee_tasks.core.zoo_index`), so listing the zoo imports
neither torch nor pytorchvideo. pytorchvideo publishes no checksums: the sha256 of the file
actually used is recorded in the prediction cache.

MACs: ``ZooEntry.macs`` is the published figure *per view* at ``input_size``. For X3D that is the
X3D paper's (= PySlowFast's) 0.60 / 1.96 / 4.73 / 18.37 GMACs at the sizes the hub builds them
for (4x160, 13x160, 16x224, 16x312); the pytorchvideo zoo table lists 0.91 / 2.96 / 6.72 / 26.64,
measured at other sizes. For the ResNet-style models it is the pytorchvideo zoo's figure at the
256-pixel test crop. Reports always show the toolkit's own count at the input actually run.
"""
from __future__ import annotations

import functools
import json
import importlib
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping

from committee_tasks.core.compat import import_pytorchvideo
from committee_tasks.core.errors import CommitteeError
from committee_tasks.core.lazy_call import LazyCall, lazy_call
from committee_tasks.core.zoo import WeightsSource, ZooEntry
from committee_tasks.core.zoo_index import PackageIndex

from .recipes import SamplingRecipe

if TYPE_CHECKING:  # imported when a model is built or loaded
    import torch

    from committee_tasks.core.zoo_files import ZooFileModel

TASK = "video"
VIEWS = f"{__package__}.decoding:VideoViews"  # every member's preprocessing, given its recipe
ZOO_SOURCE = "pytorchvideo model zoo (Kinetics-400), facebookresearch/pytorchvideo"


@dataclass(frozen=True)
class VideoModel:
    """A zoo entry plus what the video task needs on top: the default (multi-crop) recipe and the
    crop used when a single spatial crop is asked for (PySlowFast's TEST_CROP_SIZE for 1 crop)."""

    entry: ZooEntry
    recipe: SamplingRecipe
    single_crop_size: int

    @classmethod
    def of(cls, entry: ZooEntry) -> VideoModel:
        """The model of a video zoo entry: its preprocessing is ``lazy_call(VIEWS, recipe)``."""
        pre = entry.preprocessing
        if not (isinstance(pre, LazyCall) and pre.target == VIEWS and pre.args):
            raise CommitteeError(f"video model {entry.name!r} has no sampling recipe: its preprocessing must be "
                                 f"lazy_call({VIEWS!r}, SamplingRecipe(...)), got {pre!r}")
        recipe = pre.args[0]
        return cls(entry, recipe, int(entry.notes.get("single_crop_size", recipe.crop_size)))

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


# pytorchvideo's published Kinetics-400 zoo: sampling recipe, top-1, GMACs per view (a data file).
HUB_MODELS: dict[str, dict[str, Any]] = json.loads(
    Path(__file__).resolve().with_name("hub_models.json").read_text())["models"]

# Architectures a --zoo file may name: pytorchvideo's model builders and hub functions.
CREATE_FUNCTIONS = {"create_x3d": "x3d", "create_resnet": "resnet", "create_slowfast": "slowfast",
                    "create_csn": "csn", "create_r2plus1d": "r2plus1d",
                    "create_multiscale_vision_transformers": "vision_transformers"}
BUILDERS = (*CREATE_FUNCTIONS, *HUB_MODELS)


def load_pytorchvideo_checkpoint(path: Path) -> Mapping[str, torch.Tensor]:
    """The state dict of a pytorchvideo / PySlowFast checkpoint (``{"model_state": ...}``) or of
    a plain state-dict file."""
    import torch

    from committee_tasks.core.members import load_checkpoint

    checkpoint = load_checkpoint(path, "{'model_state': model.state_dict()}")
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


def read_hub_urls() -> list[dict[str, str]]:
    """The checkpoint URL of every hub model, from pytorchvideo's own hub modules (imports it)."""
    import_pytorchvideo()
    return [{"name": name, "url": importlib.import_module(f"pytorchvideo.models.hub.{spec['hub_module']}").checkpoint_paths[name]}
            for name, spec in HUB_MODELS.items()]


# The URLs as shipped (tools/write_zoo_indexes.py writes them), read again if pytorchvideo changed.
INDEX = PackageIndex(Path(__file__).resolve().with_name("pytorchvideo_index.json"), "pytorchvideo", read_hub_urls)


@functools.lru_cache(maxsize=None)
def hub_models() -> dict[str, ZooEntry]:
    urls = {record["name"]: record["url"] for record in INDEX.load()}
    models = {}
    for name, m in HUB_MODELS.items():
        url = urls[name]
        frames, rate, crop3, (clips, crops), (mt, ms) = (m["frames"], m["sampling_rate"], m["crop_3"], m["views"],
                                                         m["macs_input"])
        recipe = SamplingRecipe(frames=frames, sampling_rate=rate, short_side=crop3, crop_size=crop3,
                                clips=clips, crops=crops, slowfast_alpha=m["slowfast_alpha"])
        entry = ZooEntry(
            name=name, task=TASK, builder=functools.partial(_build_hub, name),
            weights=WeightsSource(url.rsplit("/", 1)[-1], url, None), num_classes=400, dataset="kinetics400",
            input_size=(3, mt, ms, ms), preprocessing=lazy_call(VIEWS, recipe),
            macs=int(round(m["gmacs_per_view"] * 1e9)), metrics={"top-1": m["top1"]}, state_dict_loader=load_pytorchvideo_checkpoint,
            source=ZOO_SOURCE,
            notes={"macs_per": "view", "views": f"{clips}x{crops}", "frames_x_rate": f"{frames}x{rate}",
                   "test_crop": crop3, "single_crop_size": m["crop_1"]},
        )
        models[name] = entry
    return models


ZOO_FILE_FIELDS = {
    "recipe": "{frames, sampling_rate, short_side, crop_size, clips, crops, target_fps, mean, std, slowfast_alpha}",
    "single_crop_size": "the crop of the 1-crop protocol (NAME@Tx1; default: the recipe's crop_size)",
}


def entry_from_zoo_file(model: ZooFileModel, base: ZooEntry | None) -> ZooEntry:
    """A video model of a zoo file: ``builder`` a pytorchvideo builder (``create_x3d`` ...), hub
    function (``x3d_m`` ...) or any importable callable; ``recipe`` its sampling (default: the
    base's); weights in the pytorchvideo format (``{"model_state": ...}``) or a plain state dict."""
    recipe_spec = model.get("recipe")
    if recipe_spec is None and base is None:
        raise model.error("recipe", "missing: give the sampling recipe {frames, sampling_rate, short_side, crop_size, "
                          "clips, crops} (or a 'base' model)")
    try:
        recipe = (SamplingRecipe(**{k: tuple(v) if isinstance(v, list) else v for k, v in recipe_spec.items()})
                  if recipe_spec is not None else VideoModel.of(base).recipe)
    except (TypeError, ValueError, AttributeError) as err:
        raise model.error("recipe", str(err)) from err
    single = model.get("single_crop_size", base.notes.get("single_crop_size") if base else recipe.crop_size)
    known = {name: _known_builder for name in BUILDERS}
    return model.entry(TASK, base, lazy_call(VIEWS, recipe), (3, recipe.frames, recipe.crop_size, recipe.crop_size),
                       known_builders=known, checkpoint_format=load_pytorchvideo_checkpoint,
                       notes={"macs_per": "view", "views": f"{recipe.clips}x{recipe.crops}",
                              "single_crop_size": int(single or recipe.crop_size)})


def _known_builder(model: ZooFileModel, kwargs: dict[str, Any]) -> Callable[[], torch.nn.Module]:
    return functools.partial(_build_custom, model.get("builder"), kwargs)


def _build_custom(builder_name: str, kwargs: Mapping[str, Any]) -> torch.nn.Module:
    import_pytorchvideo()
    if builder_name in HUB_MODELS:
        return _hub_function(builder_name)(pretrained=False, **kwargs)
    module = importlib.import_module(f"pytorchvideo.models.{CREATE_FUNCTIONS[builder_name]}")
    return getattr(module, builder_name)(**kwargs)

