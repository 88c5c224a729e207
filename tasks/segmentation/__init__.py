"""Semantic segmentation: mmsegmentation models and datasets, per-pixel probability averaging.

Per-pixel probabilities (C x H x W per image) are too big to cache, so this task caches
statistics instead: the shared loop computes, while every member's probabilities of an image are
in memory, the per-class intersection, union, predicted area and label area and the confidences
of each member subset's mean prediction (up to 4 members: every ensemble, and every cascade's
stage, since a cascade's stage-k prediction is the mean of its first k members). mIoU comes from
intersection and union summed over the dataset (mmseg's IoUMetric), never a mean of per-image IoUs.
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

from committee_tasks.core.metrics import IntersectionUnionStatistics
from committee_tasks.core.task import Task
from committee_tasks.core.zoo import ZooEntry

from . import zoo_file
from .layouts import DATASETS, DESCRIPTIONS, FOLDER, IGNORE_INDEX, OPTIONS
from .zoo import CLASSES_FROM_CONFIG, config_classes, config_digest, metafile_models, shipped_config

if TYPE_CHECKING:  # torch, mmseg and the members are imported when used: listing needs none
    import torch

    from committee_tasks.core.members import Member
    from committee_tasks.core.samples import SampleDataset
    from committee_tasks.core.zoo_files import ZooFileModel


class SegmentationTask(IntersectionUnionStatistics, Task):
    name = "segmentation"
    default_batch_size = 1  # images differ in size (ADE20K) and maps are large
    default_dataset = "cityscapes"
    prefetch_batches = 2
    default_measure_samples = 8
    caches_outputs = False
    ignore_index = IGNORE_INDEX
    DATASETS = DATASETS
    DATASET_DESCRIPTIONS = DESCRIPTIONS
    DATASET_OPTIONS = OPTIONS
    list_models_example = "segformer*"  # mmseg ships hundreds
    member_failure_hint = ("a plain module that takes only some image sizes (multiples of 8, 16 or 32) needs "
                           "size_divisor in its zoo entry's preprocessing: the image is padded to a multiple of it")
    zoo_file_fields = zoo_file.FIELDS
    zoo_file_output_fields = zoo_file.OUTPUT_FIELDS

    # ---- members -------------------------------------------------------------------------
    def zoo(self) -> Mapping[str, ZooEntry]:
        """Every model of mmseg's metafiles (an entry whose ``notes`` name a ``config`` is an mmseg model)."""
        return metafile_models()

    def model_entry(self, name: str) -> ZooEntry:
        """The entry, with an mmseg model's number of classes read from its config (metafiles
        give only the dataset), and a user's config's digest in its cache key (`config_digest`)."""
        entry = super().model_entry(name)
        if entry is metafile_models().get(name) or entry.notes.get(CLASSES_FROM_CONFIG):  # the config is the authority
            entry = replace(entry, num_classes=config_classes(entry.notes["config"]))
        config = entry.notes.get("config")
        if config is not None and not shipped_config(config):  # a user's config: edited, it predicts otherwise
            entry = replace(entry, variant={**entry.variant, "config": config_digest(config)})
        return entry

    def entry_from_zoo_file(self, model: ZooFileModel) -> ZooEntry:
        return zoo_file.entry_from_zoo_file(model, self.base_entry(model))

    def member_from_module(self, name: str, entry: ZooEntry, module: torch.nn.Module, digest: str) -> Member:
        from committee_tasks.core.outputs import OutputSpec

        from .members import PlainSegmentor, SegmentationMember, Segmentor

        transform = entry.preprocessing()
        if "config" in entry.notes:  # an mmseg model: its config's test settings; it outputs probabilities
            return SegmentationMember(name, Segmentor(module, module.cfg), transform, digest, entry.num_classes,
                                      entry.outputs or self.to_probs, entry)
        outputs = entry.outputs or OutputSpec()
        return SegmentationMember(name, PlainSegmentor(module, transform.spec, outputs, transform.size_divisor), transform, digest,
                                  entry.num_classes, outputs, entry)

    def to_probs(self, outputs: torch.Tensor) -> torch.Tensor:
        return outputs.float()  # the Segmentor returns probabilities already

    # ---- data ----------------------------------------------------------------------------
    def build_dataset(self, name: str, root: str | Path | None, **options: Any) -> SampleDataset:
        root = self.dataset_root(name, root)
        if name == FOLDER:
            from committee_tasks.core.names import check_split

            from .folder_dataset import load_segmentation_folder

            split = options.get("split")
            given = {o.name: options[o.name] for o in self.dataset_options(name) if options.get(o.name) is not None}
            return load_segmentation_folder(root, None if split is None else check_split(split), **given)
        from .datasets import load_segmentation_dataset

        return load_segmentation_dataset(name, root, options.get("split"))
