"""Your own segmentation data: a folder of images and a folder of label maps (dataset ``folder``).

Samples follow the mmseg datasets' convention exactly: the image as a BGR uint8 tensor 3 x H x W
(mmcv's ``LoadImageFromFile``), the labels as int64 H x W holding class ids 0..C-1 and
`IGNORE_INDEX` for pixels the metric leaves out. A label map is read as it is stored (8- or 16-bit
ids, or a palettised PNG's indices; RGB colours through the ``palette`` option). A label map that
is missing, of another size than its image, or holding an id that is neither a class nor the
ignore index makes its sample skipped, counted and reported with the reason.
"""
from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from PIL import Image

from committee_tasks.core.files import display_path
from committee_tasks.core.errors import CommitteeError
from committee_tasks.core.samples import Sample, SampleDataset

from .datasets import LabelMapError, check_label_size, labelled_sample
from .layouts import IGNORE_INDEX

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm")


@dataclass(frozen=True)
class LabelRule:
    """How stored label ids become the task's: the ignore index, mmseg's reduce_zero_label, the
    palette of RGB maps (colour -> id, as a tuple of (id, (r, g, b)))."""

    num_classes: int
    ignore_index: int = IGNORE_INDEX
    reduce_zero_label: bool = False
    palette: tuple[tuple[int, tuple[int, int, int]], ...] | None = None

    def ignored_class(self) -> int | None:
        """The class whose stored id is the ignore index, if one is: its pixels leave the metric
        while predictions of it still count against it, so its IoU is 0 wherever it is predicted
        (as mmseg computes it too) -- a mistake, unless that class is a void the model predicts."""
        first = 1 if self.reduce_zero_label else 0  # the stored id of class 0
        return self.ignore_index - first if first <= self.ignore_index < first + self.num_classes else None

    def read(self, path: Path) -> np.ndarray:
        """The label map at ``path`` as int64 ids 0..C-1 and `IGNORE_INDEX` (or `LabelMapError`)."""
        with Image.open(path) as img:
            if self.palette is not None:
                return self.ids(self._colour_ids(np.asarray(img.convert("RGB")), path), path)
            if img.mode in ("RGB", "RGBA"):
                raise LabelMapError(f"label map {path} holds RGB colours: give the palette option "
                                    "(--data-option palette=[[r,g,b],...])")
            return self.ids(np.asarray(img).astype(np.int64), path)

    def ids(self, raw: np.ndarray, path: Path) -> np.ndarray:
        """Stored ids -> class ids and `IGNORE_INDEX`; an id that is neither is refused."""
        ignored = raw == self.ignore_index
        ids = raw
        if self.reduce_zero_label:  # mmseg: 0 -> ignore, then every other id one down
            ignored |= raw == 0
            ids = raw - 1
        unknown = ~ignored & ((ids < 0) | (ids >= self.num_classes))
        if unknown.any():
            bad = np.unique(raw[unknown])[:10].tolist()
            first = 1 if self.reduce_zero_label else 0
            raise LabelMapError(f"label map holds ids {bad} that are neither a class ({first}.."
                                f"{self.num_classes - 1 + first}) nor the ignore index {self.ignore_index} ({path})")
        return np.where(ignored, IGNORE_INDEX, ids).astype(np.int64)

    def _colour_ids(self, rgb: np.ndarray, path: Path) -> np.ndarray:
        packed = (rgb[..., 0].astype(np.int64) << 16) | (rgb[..., 1].astype(np.int64) << 8) | rgb[..., 2]
        keys = np.array([(r << 16) | (g << 8) | b for _, (r, g, b) in self.palette], dtype=np.int64)
        order = np.argsort(keys)
        keys, values = keys[order], np.array([i for i, _ in self.palette], dtype=np.int64)[order]
        at = np.clip(np.searchsorted(keys, packed), 0, len(keys) - 1)
        known = keys[at] == packed
        if not known.all():
            colours = [((c >> 16) & 255, (c >> 8) & 255, c & 255) for c in np.unique(packed[~known])[:5].tolist()]
            raise LabelMapError(f"label map holds colours {colours} that are not in the palette (unknown ids) ({path})")
        return values[at]


class FolderSegmentationDataset(SampleDataset):
    """Images and their label maps, paired by a file-name rule."""

    def __init__(self, name: str, root: Path, images: Sequence[Path], labels: Sequence[Path],
                 classes: Sequence[str] | None, rule: LabelRule, title: str):
        self.name, self.root, self.title = name, root, title
        self.images, self.labels = list(images), list(labels)
        self.classes = list(classes) if classes else [str(i) for i in range(rule.num_classes)]
        self.num_classes = rule.num_classes
        self.rule = rule
        self._ids = [str(p.relative_to(root)) for p in self.images]
        self._load_image = None

    def fingerprint(self) -> str:
        """File list and sizes, and every option that changes a target."""
        digest = hashlib.sha256(json.dumps({"classes": self.classes, **asdict(self.rule)}, sort_keys=True).encode())
        for sid, image, labels in zip(self._ids, self.images, self.labels):
            sizes = [p.stat().st_size if p.is_file() else -1 for p in (image, labels)]
            digest.update(f"{sid}\t{_relative(labels, self.root)}\t{sizes}\n".encode())
        return digest.hexdigest()

    def __getitem__(self, index: int) -> Sample:
        label_path = self.labels[index]
        if not label_path.is_file():
            raise FileNotFoundError(f"label map {label_path} is missing")
        image, labels = self._read_image(self.images[index]), self.rule.read(label_path)
        check_label_size(labels, image, label_path)
        return labelled_sample(self._ids[index], image, labels)

    def _read_image(self, path: Path) -> np.ndarray:
        """H x W x 3 BGR uint8, as mmseg's pipelines read it (mmcv with OpenCV; without mmcv, PIL's
        decoding reordered to BGR, which equals it for lossless formats)."""
        if self._load_image is None:  # built lazily: runs in DataLoader workers
            try:
                from mmcv.transforms import LoadImageFromFile

                self._load_image = LoadImageFromFile()
            except ImportError:
                self._load_image = _pil_bgr
        return self._load_image({"img_path": str(path)})["img"]


def _pil_bgr(results: dict) -> dict:
    with Image.open(results["img_path"]) as img:
        return {"img": np.ascontiguousarray(np.asarray(img.convert("RGB"))[..., ::-1])}


def _relative(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)


def load_segmentation_folder(root: str | Path, split: str | None = None, *, images: str = "images",
                             labels: str = "labels", label_name: str = "{stem}.png", image_suffix: str | None = None,
                             classes: Sequence[str] | None = None, num_classes: int | None = None,
                             ignore_index: int = IGNORE_INDEX, reduce_zero_label: bool = False,
                             palette: Any = None) -> FolderSegmentationDataset:
    root = Path(root)
    image_dir, label_dir = (root / _with_split(f, split, key) for f, key in ((images, "images"), (labels, "labels")))
    if not image_dir.is_dir():
        raise CommitteeError(f"no image folder {image_dir}: point --data-root at the folder holding it, or name it "
                             "with --data-option images=SUBFOLDER")
    if not label_dir.is_dir():
        raise CommitteeError(f"no label folder {label_dir}: name it with --data-option labels=SUBFOLDER")
    rule = LabelRule(_class_count(classes, num_classes), ignore_index, reduce_zero_label, _palette(palette))
    clash = rule.ignored_class()
    if clash is not None:
        named = f" {classes[clash]!r}" if classes and clash < len(classes) else ""
        log.warning("ignore_index %d is the stored id of class %d%s: its pixels leave the metric while the members' "
                    "predictions of it still count against it, so its IoU is 0 wherever it is predicted and the "
                    "mIoU falls by about 1/%d. If the label maps mark void with another id, give that one (%d by "
                    "default); if the class is a void the members predict, select the other classes' outputs with "
                    "a class_map", ignore_index, clash, named, rule.num_classes, IGNORE_INDEX)
    suffixes = (image_suffix,) if image_suffix else IMAGE_SUFFIXES
    image_paths = sorted(p for p in image_dir.rglob("*") if p.is_file()
                         and (p.name.endswith(image_suffix) if image_suffix else p.suffix.lower() in IMAGE_SUFFIXES))
    if not image_paths:
        raise CommitteeError(f"no images ({', '.join(suffixes)}) in {image_dir}")
    label_paths = [label_dir / p.parent.relative_to(image_dir) / _label_name(label_name, p, image_suffix)
                   for p in image_paths]
    missing = sum(not p.is_file() for p in label_paths)
    if missing == len(label_paths):
        raise CommitteeError(f"no label map found for any image of {image_dir}: e.g. {label_paths[0]} is missing; set "
                             "the file-name rule with --data-option label_name=... (e.g. {stem}_L.png)")
    if missing:
        log.warning("%d of %d images have no label map in %s; they will be skipped", missing, len(label_paths),
                    label_dir)
    _check_first_map(label_paths, rule)
    name = f"{root.name}-{image_dir.name}"
    title = f"{display_path(image_dir)} with label maps in {label_dir.name}/ ({rule.num_classes} classes)"
    return FolderSegmentationDataset(name, root, image_paths, label_paths, classes, rule, title)


def _with_split(folder: str, split: str | None, key: str) -> str:
    if "{split}" not in folder:
        if split:
            raise CommitteeError(f"--split {split} has no place in the {key} folder {folder!r}: write it there "
                                 f"(--data-option {key}={folder}/{{split}}) or leave --split out")
        return folder
    if not split:
        raise CommitteeError(f"the {key} folder {folder!r} holds {{split}}: pass --split")
    return folder.replace("{split}", split)


def _label_name(rule: str, image: Path, image_suffix: str | None) -> str:
    stem = image.name[:-len(image_suffix)] if image_suffix else image.stem
    try:
        return rule.format(stem=stem, name=image.name)
    except (KeyError, IndexError, ValueError) as err:
        raise CommitteeError(f"label_name {rule!r}: only {{stem}} and {{name}} may be used ({err})") from None


def _class_count(classes: Sequence[str] | None, num_classes: int | None) -> int:
    if classes is None and num_classes is None:
        raise CommitteeError("dataset 'folder' needs its classes: --data-option classes=a,b,c (or a file of names) "
                             "or --data-option num_classes=N")
    if classes is not None and num_classes is not None and len(classes) != num_classes:
        raise CommitteeError(f"the classes option names {len(classes)} classes but num_classes is {num_classes}")
    count = len(classes) if classes is not None else num_classes
    if count < 1:
        raise CommitteeError(f"num_classes must be at least 1, got {count}")
    return count


def _palette(value: Any) -> tuple[tuple[int, tuple[int, int, int]], ...] | None:
    """``[[r, g, b], ...]`` (index = id) or ``{id: [r, g, b]}`` as (id, colour) pairs."""
    if value is None:
        return None
    pairs = list(enumerate(value)) if isinstance(value, list) else []
    if isinstance(value, dict):
        pairs = list(value.items())
    found, seen = [], {}
    for key, colour in pairs:
        if not (str(key).isdigit() and isinstance(colour, list) and len(colour) == 3
                and all(isinstance(c, int) and not isinstance(c, bool) and 0 <= c <= 255 for c in colour)):
            raise CommitteeError(f"palette entry {key!r}: {colour!r} is refused: expected [r, g, b] (0..255) per "
                                 "class id, as a list (index = id) or {id: [r, g, b]}")
        if tuple(colour) in seen:
            raise CommitteeError(f"palette: ids {seen[tuple(colour)]} and {key} have the same colour {colour}")
        seen[tuple(colour)] = int(key)
        found.append((int(key), tuple(colour)))
    if not found:
        raise CommitteeError(f"palette {value!r} is refused: expected [[r, g, b], ...] per class id")
    return tuple(found)


def _check_first_map(paths: Sequence[Path], rule: LabelRule) -> None:
    """RGB maps without a palette would make every sample fail: say so before running."""
    first = next(p for p in paths if p.is_file())
    with Image.open(first) as img:
        mode = img.mode
    if rule.palette is None and mode in ("RGB", "RGBA"):
        raise CommitteeError(f"label map {first} holds RGB colours: give the palette option (--data-option "
                             "palette=[[r,g,b],...] or a .json file, one colour per class id)")
