"""Semantic segmentation: mmsegmentation models and datasets, per-pixel probability averaging.

Per-pixel probabilities (C x H x W per image) are too big to cache, so this task caches
statistics instead: the shared loop computes, while every member's probabilities of an image are
in memory, the per-class intersection, union, predicted area and label area and the confidences
of each member subset's mean prediction (up to 4 members: every ensemble, and every cascade's
stage, since a cascade's stage-k prediction is the mean of its first k members). mIoU comes from
intersection and union summed over the dataset (mmseg's IoUMetric), never a mean of per-image IoUs.
"""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from committee_tasks.core.task import Task
from committee_tasks.core.zoo import ZooEntry
from committee_tasks.core.zoo_files import ZooFiles

from .layouts import IGNORE_INDEX, LAYOUTS
from .zoo import SegmentationModel, exact_entry, metafile_models, models_from_file

if TYPE_CHECKING:  # torch, mmseg and the members are imported when used: listing needs none
    import torch

    from committee_tasks.core.members import Member
    from committee_tasks.core.samples import SampleDataset


class SegmentationTask(ZooFiles[SegmentationModel], Task):
    name = "segmentation"
    metric_name = "mIoU"
    default_batch_size = 1  # images differ in size (ADE20K) and maps are large
    default_dataset = "cityscapes"
    prefetch_batches = 2
    default_measure_samples = 8
    caches_outputs = False
    score_range = 100.0
    DATASETS = tuple(LAYOUTS)
    list_models_example = "segformer*"  # mmseg ships hundreds
    builtin_models = staticmethod(metafile_models)
    models_from_file = staticmethod(models_from_file)

    # ---- members -------------------------------------------------------------------------
    def model_entry(self, name: str) -> ZooEntry:
        super().model_entry(name)  # the error for an unknown name
        return exact_entry(self.models()[name])

    def member_from_module(self, name: str, entry: ZooEntry, module: torch.nn.Module, digest: str) -> Member:
        from .members import SegmentationMember, Segmentor

        return SegmentationMember(name, Segmentor(module, module.cfg), entry.preprocessing(), digest,
                                  entry.num_classes, self.to_probs, entry)

    def to_probs(self, outputs: torch.Tensor) -> torch.Tensor:
        return outputs.float()  # the Segmentor returns probabilities already

    # ---- data ----------------------------------------------------------------------------
    def build_dataset(self, name: str, root: str | Path | None, **options: Any) -> SampleDataset:
        root = self.dataset_root(name, root)
        from .datasets import load_segmentation_dataset

        return load_segmentation_dataset(name, root, options.get("split"))

    # ---- statistics ----------------------------------------------------------------------
    def sample_statistics_torch(self, combined: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Per image: intersection, union, predicted area and label area of each class (4C),
        over the pixels whose label is not the ignore index (mmseg's intersect_and_union)."""
        import torch

        classes = combined.shape[1]
        pred = combined.argmax(dim=1)
        rows = []
        for p, t in zip(pred, targets):
            valid = (t != IGNORE_INDEX) & (t >= 0) & (t < classes)
            p, t = p[valid], t[valid]
            inter = torch.bincount(t[p == t], minlength=classes)
            area_pred = torch.bincount(p, minlength=classes)
            area_label = torch.bincount(t, minlength=classes)
            rows.append(torch.cat([inter, area_pred + area_label - inter, area_pred, area_label]))
        return torch.stack(rows).double()

    def sample_statistics(self, combined: np.ndarray, targets: np.ndarray) -> np.ndarray:
        import torch

        return self.sample_statistics_torch(torch.from_numpy(combined), torch.from_numpy(targets)).numpy()

    def metric(self, summed_statistics: np.ndarray) -> float | np.ndarray:
        """mIoU in %: per-class IoU from summed intersection and union; classes absent from both
        prediction and labels (union 0) are left out, as mmseg's nanmean does."""
        summed = np.asarray(summed_statistics, dtype=np.float64)
        classes = summed.shape[-1] // 4
        inter, union = summed[..., :classes], summed[..., classes:2 * classes]
        with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # no class present at all: NaN, not a warning
            iou = np.where(union > 0, inter / union, np.nan)
            miou = 100.0 * np.nanmean(iou, axis=-1)
        return float(miou) if np.ndim(miou) == 0 else miou
