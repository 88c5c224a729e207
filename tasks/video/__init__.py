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
from typing import TYPE_CHECKING, Any, Mapping

from committee_tasks.core.errors import CommitteeError, unknown_name
from committee_tasks.core.lazy_call import lazy_call
from committee_tasks.core.metrics import Top1Statistics
from committee_tasks.core.member_spec import MemberSpec
from committee_tasks.core.task import Task
from committee_tasks.core.zoo import ZooEntry

from . import layouts
from .zoo import VIEWS, ZOO_FILE_FIELDS, VideoModel, entry_from_zoo_file, hub_models

if TYPE_CHECKING:  # torch, decoding and the members are imported when used: listing needs none
    import torch

    from committee_tasks.core.members import Member
    from committee_tasks.core.samples import SampleDataset
    from committee_tasks.core.zoo_files import ZooFileModel

NAME_PATTERN = re.compile(r"^(?P<base>[^@+]+)(?:@(?P<clips>\d+)x(?P<crops>\d+))?(?:\+exit(?P<exit>[0-9.]+))?$")


class VideoTask(Top1Statistics, Task):
    """A member's video prediction is the mean of its softmax over views; a committee averages
    members' video predictions; top-1 from summed correctness, as for images."""

    name = "video"
    default_batch_size = 2  # videos per batch: each carries up to 30 uint8 views
    DATASETS = tuple(layouts.DATASETS)
    DATASET_DESCRIPTIONS = layouts.DESCRIPTIONS
    DATASET_OPTIONS = layouts.OPTIONS
    default_dataset = "kinetics400"
    default_measure_samples = 8  # timed on preprocessed views held in memory: ~100-200 MB per video
    prefetch_batches = 1  # each batch of views is large (X3D-L, 10x3 views: ~180 MB per video)
    zoo_file_fields = ZOO_FILE_FIELDS

    def zoo(self) -> Mapping[str, ZooEntry]:
        return hub_models()

    def entry_from_zoo_file(self, model: ZooFileModel) -> ZooEntry:
        return entry_from_zoo_file(model, self.base_entry(model))

    def parse_name(self, name: str) -> tuple[VideoModel, Any, float | None]:
        match = NAME_PATTERN.match(name)
        models = self.entries()
        base = match["base"] if match else name
        if base not in models:
            raise unknown_name("model", base, models,
                               fix="Spell a member NAME, NAME@CLIPSxCROPS or NAME@CLIPSxCROPS+exitTHRESHOLD; "
                                   "list names with `tools/eval.py --list-models --task video`.")
        if match is None:
            raise CommitteeError(f"cannot read member {name!r}: spell it NAME, NAME@CLIPSxCROPS (e.g. x3d_m@10x3) "
                                 "or NAME@CLIPSxCROPS+exitTHRESHOLD (e.g. x3d_m@10x3+exit0.8)")
        model = VideoModel.of(models[base])
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
        return replace(model.entry, name=name, preprocessing=lazy_call(VIEWS, recipe),
                       notes={**model.entry.notes, "views": f"{recipe.clips}x{recipe.crops}"})

    def build_member(self, name: str, weights_dir: str | Path | None = None) -> Member:
        from committee_tasks.core.members import build_module, load_weights

        from .decoding import VideoViews
        from .members import VideoClassifier, VideoMember

        model, recipe, exit_at = self.parse_name(name)
        module = build_module(model.entry)
        digest = load_weights(model.entry, module, weights_dir)
        classifier = VideoClassifier(module, recipe).eval()
        to_probs = _identity if classifier.outputs_probabilities else _softmax
        if model.entry.outputs is not None:  # a zoo file's class map (and, unless it says, the head's type)
            kind = model.entry.outputs.type or ("probabilities" if classifier.outputs_probabilities else "logits")
            to_probs = replace(model.entry.outputs, type=kind)
        return VideoMember(name, classifier, VideoViews(recipe), digest, model.entry.num_classes, to_probs,
                           self.model_entry(name), views=recipe.views, view_exit=exit_at)

    def describe_member(self, name: str, weights_dir: str | Path | None = None) -> MemberSpec:
        """The core's description (the entry's weights, views and classes) keyed like `VideoMember`."""
        from .members import exit_fingerprint

        spec = super().describe_member(name, weights_dir)
        _, _, exit_at = self.parse_name(name)
        return replace(spec, fingerprint=exit_fingerprint(spec.fingerprint, exit_at))

    def to_probs(self, outputs: torch.Tensor) -> torch.Tensor:
        return _softmax(outputs)

    # ---- data ----------------------------------------------------------------------------
    def build_dataset(self, name: str, root: str | Path | None, **options: Any) -> SampleDataset:
        root = self.dataset_root(name, root, holding="the videos and their list file")
        from .datasets import load_kinetics

        return load_kinetics(root, split=options.get("split"), label_file=options.get("label_file"),
                             class_list=options.get("class_list"), name=name)

    def member_inputs(self, data, transforms):
        from .decoding import decode_views

        return decode_views(data, transforms)


def _identity(outputs: torch.Tensor) -> torch.Tensor:
    return outputs.float()


def _softmax(outputs: torch.Tensor) -> torch.Tensor:
    import torch

    return torch.softmax(outputs.float(), dim=1)
