"""Metrics shared by several tasks, as additive per-sample statistics: mixins a task plugin
(built-in or not) puts before `Task` to get its statistics and metric."""
from __future__ import annotations

import warnings
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch


class Top1Statistics:
    """Top-1 accuracy in % from summed per-sample statistics (correct, count).

    A mixin for `Task` subclasses whose combined output is (N, classes) probabilities and whose
    targets are class indices: image and video classification, and plugins like them.
    """

    metric_name = "top-1"
    score_range = 100.0

    def check_targets(self, targets: np.ndarray, ids, num_classes: int) -> None:
        """One class index in 0..C-1 per sample: strings, one-hot rows, (N, 1) columns and indices
        out of range would otherwise be scored (as wrong, or as an array of metrics)."""
        from committee_tasks.core.errors import CommitteeError

        targets = np.asarray(targets)
        if targets.ndim != 1:
            fix = ("one-hot rows: pass targets.argmax(1)" if targets.ndim == 2 and targets.shape[1] == num_classes
                   else "pass a 1-D array (targets.reshape(-1) for an (N, 1) column)")
            raise CommitteeError(f"top-1 needs one class index per sample, but the targets have shape "
                                 f"{targets.shape}: {fix}")
        integral = np.issubdtype(targets.dtype, np.integer) or (
            np.issubdtype(targets.dtype, np.floating) and np.all(np.isfinite(targets) & (targets == np.round(targets))))
        if not integral:
            first = targets[0].item() if len(targets) else None
            raise CommitteeError(f"top-1 needs class indices (integers), but the targets are {targets.dtype} values "
                                 f"such as {first!r} (sample {ids[0]!r}): map class names to indices "
                                 f"0..{num_classes - 1}")
        bad = np.flatnonzero((targets < 0) | (targets >= num_classes))
        if len(bad):
            examples = ", ".join(f"sample {ids[i]!r}: {targets[i].item()}" for i in bad[:3])
            raise CommitteeError(f"{len(bad)} targets are not class indices 0..{num_classes - 1} of the members' "
                                 f"{num_classes} classes ({examples}): fix the labels, or use members that "
                                 "predict those classes")

    def sample_statistics(self, combined: np.ndarray, targets: np.ndarray) -> np.ndarray:
        return self.statistics_of_top_class(combined.argmax(axis=1), targets)

    def statistics_of_top_class(self, predicted: np.ndarray, targets: np.ndarray) -> np.ndarray:
        """`sample_statistics` from the combined output's top class alone (numpy's argmax: the
        first of tied classes); the search then forms means only on candidate classes."""
        correct = (np.asarray(predicted) == targets).astype(np.float64)
        return np.stack([correct, np.ones_like(correct)], axis=1)

    def sample_scores(self, statistics: np.ndarray) -> np.ndarray:
        return 100.0 * statistics[:, 0] / statistics[:, 1]  # top-1 is their mean

    def metric(self, summed_statistics: np.ndarray) -> float | np.ndarray:
        summed = np.asarray(summed_statistics, dtype=np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            top1 = 100.0 * summed[..., 0] / summed[..., 1]
        return float(top1) if top1.ndim == 0 else top1


class IntersectionUnionStatistics:
    """mIoU in % from summed per-class intersection, union, predicted and label areas (4C per
    sample), as mmseg's ``IoUMetric`` computes it: over the dataset, never a mean of per-image IoUs.

    A mixin for `Task` subclasses whose combined output is (N, C, H, W) probabilities and whose
    targets are (N, H, W) class ids; pixels labelled ``ignore_index`` (or outside 0..C-1) count
    nowhere. Classes absent from both prediction and labels are left out (mmseg's nanmean)."""

    metric_name = "mIoU"
    score_range = 100.0
    ignore_index = 255

    def sample_statistics_torch(self, combined: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        import torch

        classes = combined.shape[1]
        pred = combined.argmax(dim=1)
        rows = []
        for p, t in zip(pred, targets):
            valid = (t != self.ignore_index) & (t >= 0) & (t < classes)
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
        summed = np.asarray(summed_statistics, dtype=np.float64)
        classes = summed.shape[-1] // 4
        inter, union = summed[..., :classes], summed[..., classes:2 * classes]
        with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # no class present at all: NaN, not a warning
            iou = np.where(union > 0, inter / union, np.nan)
            miou = 100.0 * np.nanmean(iou, axis=-1)
        return float(miou) if np.ndim(miou) == 0 else miou

    def per_class(self, summed_statistics: np.ndarray) -> dict[str, np.ndarray]:
        """Each class's IoU and Acc (its labelled pixels predicted right) in %, as mmseg's
        ``IoUMetric`` tabulates them; NaN for a class absent from both prediction and labels (IoU)
        or from the labels (Acc)."""
        summed = np.asarray(summed_statistics, dtype=np.float64)
        classes = summed.shape[-1] // 4
        inter, union, label = (summed[..., k * classes:(k + 1) * classes] for k in (0, 1, 3))
        with np.errstate(invalid="ignore", divide="ignore"):
            return {"IoU": np.where(union > 0, 100.0 * inter / union, np.nan),
                    "Acc": np.where(label > 0, 100.0 * inter / label, np.nan)}
