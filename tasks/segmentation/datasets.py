"""Cityscapes and ADE20K as mmseg reads them: its own dataset classes list the images and label
maps, its own ``LoadImageFromFile``/``LoadAnnotations`` read them (``reduce_zero_label``, label
maps, ignore index 255).

Layouts (``--data-root DIR``, split ``val``):

* Cityscapes: ``DIR/leftImg8bit/val/<city>/*_leftImg8bit.png`` and
  ``DIR/gtFine/val/<city>/*_gtFine_labelTrainIds.png`` (mmseg's ``tools/dataset_converters/cityscapes.py``
  writes the train-id maps);
* ADE20K: ``DIR/images/validation/*.jpg`` and ``DIR/annotations/validation/*.png`` (0 = other,
  reduced to ignore as mmseg does).

An image whose label map is missing, of another size, or holds class ids the dataset does not
have is skipped, counted and reported with the reason; the run goes on.
"""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from committee_tasks.core.compat import import_mmseg
from committee_tasks.core.errors import CommitteeError
from committee_tasks.core.names import check_split
from committee_tasks.core.samples import Sample, SampleDataset

from .layouts import IGNORE_INDEX, LAYOUTS, SPLIT_NAMES, TITLES


class LabelMapError(ValueError):
    """A label map that does not fit its image or the dataset's classes."""


class SegmentationDataset(SampleDataset):
    def __init__(self, name: str, mmseg_dataset, root: Path):
        self.name = name
        self.mmseg_dataset = mmseg_dataset
        self.root = root
        self.classes: Sequence[str] = mmseg_dataset.metainfo["classes"]
        self._infos = [mmseg_dataset.get_data_info(i) for i in range(len(mmseg_dataset))]
        self._ids = [str(Path(info["img_path"]).relative_to(root)) for info in self._infos]
        self._load_image = self._load_labels = None

    def fingerprint(self) -> str:
        digest = hashlib.sha256(f"{self.name}\t{len(self.classes)}\n".encode())
        for sid, info in zip(self._ids, self._infos):
            seg = Path(info["seg_map_path"])
            sizes = [p.stat().st_size if p.is_file() else -1 for p in (Path(info["img_path"]), seg)]
            digest.update(f"{sid}\t{seg.name}\t{sizes}\t{info.get('reduce_zero_label')}\n".encode())
        return digest.hexdigest()

    def __getitem__(self, index: int) -> Sample:
        if self._load_image is None:  # built lazily: runs in DataLoader workers
            from mmcv.transforms import LoadImageFromFile
            from mmseg.datasets.transforms import LoadAnnotations

            self._load_image, self._load_labels = LoadImageFromFile(), LoadAnnotations()
        info = dict(self._infos[index])
        info.setdefault("seg_fields", [])
        if not Path(info["seg_map_path"]).is_file():
            raise FileNotFoundError(f"label map {info['seg_map_path']} is missing")
        results = self._load_labels(self._load_image(info))
        image, labels = results["img"], results["gt_seg_map"]
        check_label_size(labels, image, info["seg_map_path"])
        unknown = np.setdiff1d(np.unique(labels), np.r_[np.arange(len(self.classes)), IGNORE_INDEX])
        if len(unknown):
            raise LabelMapError(f"label map holds class ids {unknown[:10].tolist()} outside 0..{len(self.classes) - 1} "
                                f"and the ignore index {IGNORE_INDEX} ({info['seg_map_path']})")
        return labelled_sample(self._ids[index], image, labels)


def check_label_size(labels: np.ndarray, image: np.ndarray, label_path) -> None:
    """A label map of another size than its image is a `LabelMapError` (the sample is skipped)."""
    if labels.shape != image.shape[:2]:
        raise LabelMapError(f"label map {labels.shape[1]}x{labels.shape[0]} does not match the image "
                            f"{image.shape[1]}x{image.shape[0]} ({label_path})")


def labelled_sample(sample_id: str, image: np.ndarray, labels: np.ndarray) -> Sample:
    """The sample of a decoded image (H x W x 3, BGR uint8) and its label map (H x W class ids),
    as every segmentation dataset yields it."""
    pixels = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))  # 3 x H x W, BGR uint8
    return Sample(sample_id, pixels, torch.from_numpy(labels.astype(np.int64)))


def load_segmentation_dataset(name: str, root: str | Path, split: str | None = None) -> SegmentationDataset:
    import_mmseg()
    from mmengine.registry import init_default_scope
    from mmseg import datasets

    root = Path(root)
    if name not in LAYOUTS:
        raise CommitteeError(f"unknown segmentation dataset {name!r}; valid: {', '.join(LAYOUTS)}")
    split = "val" if split is None else check_split(split)  # a folder name under root: must stay in it
    split = SPLIT_NAMES.get(name, {}).get(split, split)
    cls_name, img_dir, seg_dir = LAYOUTS[name]
    img_dir, seg_dir = img_dir.format(split=split), seg_dir.format(split=split)
    if not (root / img_dir).is_dir():
        raise CommitteeError(f"no {name} images in {root / img_dir}: point --data-root at the folder holding "
                             f"{img_dir.split('/')[0]}/ and {seg_dir.split('/')[0]}/")
    init_default_scope("mmseg")
    dataset = getattr(datasets, cls_name)(data_root=str(root), data_prefix=dict(img_path=img_dir, seg_map_path=seg_dir),
                                          pipeline=[], test_mode=True, serialize_data=False)
    if len(dataset) == 0:
        raise CommitteeError(f"{cls_name} found no images under {root / img_dir} (suffix "
                             f"{dataset.img_suffix!r})")
    segmentation = SegmentationDataset(f"{name}-{split}", dataset, root)
    segmentation.title = f"{TITLES.get(name, name)} {split} split"
    return segmentation
