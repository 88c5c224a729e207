"""Video classification: pytorchvideo Kinetics models, multi-view testing, clips decoded with decord.

Member names may carry the test protocol and view-level early exit::

    x3d_m             the zoo's protocol (X3D: 10 clips x 3 crops)
    x3d_m@5x1         5 temporal clips x 1 (centre) crop
    x3d_m@10x3+exit0.8  add views (centre crops first, clips spread over the video) until the
                      mean prediction's max probability reaches 0.8

Each spelling is its own member (its own cache entry), so a search can mix protocols.
"""
from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path
from typing import Any, Mapping

import torch

from committee_tasks.core.errors import CommitteeError, unknown_name
from committee_tasks.core.metrics import Top1Statistics
from committee_tasks.core.task import Member, SampleDataset, Task, load_weights
from committee_tasks.core.zoo import ZooEntry

from .datasets import load_kinetics
from .decoding import VideoViews, decode_views
from .members import VideoClassifier, VideoMember
from .zoo import VideoModel, hub_models, models_from_file

NAME_PATTERN = re.compile(r"^(?P<base>[^@+]+)(?:@(?P<clips>\d+)x(?P<crops>\d+))?(?:\+exit(?P<exit>[0-9.]+))?$")


class VideoTask(Top1Statistics, Task):
    """A member's video prediction is the mean of its softmax over views; a committee averages
    members' video predictions; top-1 from summed correctness, as for images."""

    name = "video"
    default_batch_size = 2  # videos per batch: each carries up to 30 uint8 views
    DATASETS = ("kinetics400", "kinetics600", "kinetics700", "kinetics")
    default_dataset = "kinetics400"
    default_measure_samples = 8  # timed on preprocessed views held in memory: ~100-200 MB per video
    prefetch_batches = 1  # each batch of views is large (X3D-L, 10x3 views: ~180 MB per video)

    def __init__(self):
        self._extra: dict[str, VideoModel] = {}

    def models(self) -> dict[str, VideoModel]:
        return {**hub_models(), **self._extra}

    def zoo(self) -> Mapping[str, ZooEntry]:
        return {name: m.entry for name, m in self.models().items()}

    def add_zoo_file(self, path: str | Path) -> None:
        self._extra.update(models_from_file(path))

    def parse_name(self, name: str) -> tuple[VideoModel, Any, float | None]:
        match = NAME_PATTERN.match(name)
        models = self.models()
        base = match["base"] if match else name
        if base not in models:
            raise unknown_name("model", base, models,
                               fix="Spell a member NAME, NAME@CLIPSxCROPS or NAME@CLIPSxCROPS+exitTHRESHOLD; "
                                   "list names with `tools/eval.py --list-models --task video`.")
        if match is None:
            raise CommitteeError(f"cannot read member {name!r}: spell it NAME, NAME@CLIPSxCROPS (e.g. x3d_m@10x3) "
                                 "or NAME@CLIPSxCROPS+exitTHRESHOLD (e.g. x3d_m@10x3+exit0.8)")
        model = models[base]
        try:
            recipe = model.recipe_for(int(match["clips"]) if match["clips"] else None,
                                      int(match["crops"]) if match["crops"] else None)
        except ValueError as err:
            raise CommitteeError(f"member {name!r}: {err}") from err
        exit_at = float(match["exit"]) if match["exit"] else None
        if exit_at is not None and not 0.0 < exit_at <= 1.0:
            raise CommitteeError(f"member {name!r}: the view-exit threshold must be in (0, 1], got {exit_at}")
        return model, recipe, exit_at

    def model_entry(self, name: str) -> ZooEntry:
        model, recipe, _ = self.parse_name(name)
        return replace(model.entry, name=name, preprocessing=lambda: VideoViews(recipe),
                       notes={**model.entry.notes, "views": f"{recipe.clips}x{recipe.crops}"})

    def build_member(self, name: str, weights_dir: str | Path | None = None) -> Member:
        model, recipe, exit_at = self.parse_name(name)
        module = model.entry.builder()
        digest = load_weights(model.entry, module, weights_dir)
        classifier = VideoClassifier(module, recipe).eval()
        to_probs = _identity if classifier.outputs_probabilities else _softmax
        return VideoMember(name, classifier, VideoViews(recipe), digest, model.entry.num_classes, to_probs,
                           self.model_entry(name), views=recipe.views, view_exit=exit_at)

    def to_probs(self, outputs: torch.Tensor) -> torch.Tensor:
        return _softmax(outputs)

    # ---- data ----------------------------------------------------------------------------
    def list_datasets(self) -> list[str]:
        return list(self.DATASETS)

    def build_dataset(self, name: str, root: str | Path | None, **options: Any) -> SampleDataset:
        if name not in self.DATASETS:
            raise unknown_name("dataset", name, self.DATASETS)
        if root is None:
            raise CommitteeError(f"dataset {name!r} needs --data-root DIR (the videos and their list file)")
        return load_kinetics(root, split=options.get("split"), label_file=options.get("label_file"),
                             class_list=options.get("class_list"), name=name)

    def member_inputs(self, data, transforms):
        return decode_views(data, transforms)


def _identity(outputs: torch.Tensor) -> torch.Tensor:
    return outputs.float()


def _softmax(outputs: torch.Tensor) -> torch.Tensor:
    return torch.softmax(outputs.float(), dim=1)
