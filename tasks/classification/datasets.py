"""Classification datasets as users have them on disk, each yielding decoded `Sample`s.

* ``cifar10``: the test set as ``cifar10-test.npz`` (arrays ``images``, ``labels``) or
  torchvision's ``cifar-10-batches-py/test_batch``.
* ``imagenet``: the validation set as ``<root>/val/<wnid>/*`` or ``<root>/<wnid>/*`` (torchvision
  ``ImageFolder`` / timm layout), or a flat folder of images plus a label file: ``val.txt`` lines
  ``<file> <class index>`` (Caffe/timm style) or Kaggle's ``LOC_val_solution.csv``.
* ``digits``: scikit-learn's 1,797 real 8x8 handwritten digits (shipped with the package), the
  seeded held-out split the embedded default zoo was not trained on.
"""
from __future__ import annotations

import csv
import hashlib
import pickle
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image

from committee_tasks.core.errors import CommitteeError
from committee_tasks.core.samples import Sample, SampleDataset

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")


def _hash_strings(parts: Sequence[str]) -> str:
    digest = hashlib.sha256()
    for p in parts:
        digest.update(p.encode())
        digest.update(b"\0")
    return digest.hexdigest()


class ArrayImageDataset(SampleDataset):
    """Images held in memory as arrays, with integer labels and a hash of their content; ids are
    the indices ("00000" ...) unless given. Items are PIL images of uint8 HWC arrays (CIFAR)."""

    def __init__(self, name: str, images: np.ndarray, labels: np.ndarray, content_hash: str,
                 ids: Sequence[str] | None = None):
        self.name = name
        self.images = images
        self.labels = labels
        self._ids = list(ids) if ids is not None else [f"{i:05d}" for i in range(len(labels))]
        self._fingerprint = content_hash

    def fingerprint(self) -> str:
        return self._fingerprint

    def image(self, index: int):
        """The image at ``index`` as the members' preprocessing takes it."""
        return Image.fromarray(self.images[index])

    def __getitem__(self, index: int) -> Sample:
        return Sample(self._ids[index], self.image(index), int(self.labels[index]))


def load_cifar10(root: str | Path) -> ArrayImageDataset:
    root = Path(root)
    candidates = [root, root / "cifar10-test.npz", root / "cifar-10-batches-py" / "test_batch",
                  root / "test_batch"]
    for path in candidates:
        if not path.is_file():
            continue
        raw = path.read_bytes()
        content_hash = hashlib.sha256(raw).hexdigest()
        if path.suffix == ".npz":
            with np.load(path) as data:
                images, labels = data["images"], data["labels"]
        else:  # the original python pickle torchvision downloads
            batch = pickle.loads(raw, encoding="latin1")
            images = np.asarray(batch["data"], dtype=np.uint8).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
            labels = np.asarray(batch["labels"])
        if images.shape[1:] != (32, 32, 3) or len(images) != len(labels):
            raise CommitteeError(f"{path}: expected images (N, 32, 32, 3) and N labels, got "
                                 f"{images.shape} and {labels.shape}")
        dataset = ArrayImageDataset("cifar10-test", np.ascontiguousarray(images), labels.astype(np.int64),
                                    content_hash)
        dataset.title = "CIFAR-10 test set"
        return dataset
    raise CommitteeError(
        f"no CIFAR-10 test set under {root}: expected one of "
        + ", ".join(str(c) for c in candidates[1:])
        + " (cifar10-test.npz with arrays images/labels, or torchvision's cifar-10-batches-py)"
    )


class ImageFileDataset(SampleDataset):
    """Image files with integer labels; the id is the path relative to the root. ``num_classes``:
    the classes the labels index (None: unknown; then only labels beyond the members' are refused)."""

    def __init__(self, name: str, root: Path, files: list[str], labels: list[int], title: str = "",
                 num_classes: int | None = None):
        self.name = name
        self.title = title or f"images in {root}"
        self.root = root
        self.files = self._ids = files
        self.labels = labels
        self.num_classes = num_classes

    def check_classes(self, num_classes: int) -> None:
        super().check_classes(num_classes)
        beyond = [(f, y) for f, y in zip(self.files, self.labels) if y >= num_classes]
        if beyond:
            raise CommitteeError(f"{self.describe()}: {beyond[0][0]} has class index {beyond[0][1]} but the members "
                                 f"predict {num_classes} classes ({len(beyond)} such images)")

    def fingerprint(self) -> str:
        # File list, sizes and labels: hashing 6 GB of pixels on every run would cost minutes.
        sizes = [str((self.root / f).stat().st_size) for f in self.files]
        return _hash_strings([f"{f}|{s}|{y}" for f, s, y in zip(self.files, sizes, self.labels)])

    def __getitem__(self, index: int) -> Sample:
        with Image.open(self.root / self.files[index]) as img:
            img = img.convert("RGB")  # also forces the full decode: a truncated file fails here
        return Sample(self.files[index], img, self.labels[index])


def _is_image(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_EXTENSIONS


def read_class_list(path: Path) -> list[str]:
    """wnids in class-index order, one per line (first token of each line)."""
    return [line.split()[0] for line in path.read_text().splitlines() if line.strip()]


def load_imagenet(root: str | Path, split: str = "val", class_list: str | Path | None = None,
                  label_file: str | Path | None = None, num_classes: int = 1000) -> ImageFileDataset:
    root = Path(root)
    if not root.is_dir():
        raise CommitteeError(f"ImageNet root {root} is not a folder")
    folder = root / split if (root / split).is_dir() else root
    class_dirs = sorted(p.name for p in folder.iterdir() if p.is_dir())
    wnids = read_class_list(Path(class_list)) if class_list else None
    if wnids is not None and len(wnids) != num_classes:
        raise CommitteeError(f"class list {class_list} has {len(wnids)} wnids but the models predict "
                             f"{num_classes} classes: list every class, in index order")

    if class_dirs and label_file is None:  # <folder>/<wnid>/<image>
        if wnids is None:
            if len(class_dirs) != num_classes:
                raise CommitteeError(
                    f"{folder} has {len(class_dirs)} class folders but the models predict {num_classes} "
                    "classes: class indices come from the sorted folder names only when all are present. "
                    "Pass --data-option class_list=FILE (the wnids in index order, one per line) for a subset"
                )
            wnids = class_dirs
        index = {w: i for i, w in enumerate(wnids)}
        unknown = [d for d in class_dirs if d not in index]
        if unknown:
            raise CommitteeError(f"class folders {unknown[:5]} are not in the class list ({len(unknown)} unknown)")
        files, labels = [], []
        for d in class_dirs:
            for p in sorted((folder / d).iterdir()):
                if p.is_file() and _is_image(p):
                    files.append(str(p.relative_to(root)))
                    labels.append(index[d])
        return _imagenet(split, root, files, labels, num_classes)

    label_path = Path(label_file) if label_file else next(
        (p for p in (root / "val.txt", root / "LOC_val_solution.csv", folder / "val.txt") if p.is_file()), None)
    if label_path is None:
        raise CommitteeError(
            f"{folder} has no class folders and no label file: use <root>/val/<wnid>/<image>, or a flat "
            "folder with val.txt ('<file> <class index>' lines) or LOC_val_solution.csv, or pass "
            "--data-option label_file=FILE"
        )
    if label_path.suffix == ".csv":  # Kaggle: ImageId,PredictionString ("<wnid> x y x y ...")
        with open(label_path, newline="") as f:
            reader = csv.DictReader(f)
            if not {"ImageId", "PredictionString"} <= set(reader.fieldnames or ()):
                raise CommitteeError(f"{label_path}: expected Kaggle's columns ImageId,PredictionString, "
                                     f"got {reader.fieldnames}")
            rows = [(r["ImageId"], r["PredictionString"].split()[0]) for r in reader]
        if wnids is None:
            wnids = sorted({w for _, w in rows})
            if len(wnids) != num_classes:
                raise CommitteeError(
                    f"{label_path} names {len(wnids)} classes but the models predict {num_classes} classes: "
                    "class indices come from the sorted wnids only when all are present. Pass --data-option "
                    "class_list=FILE (the wnids in index order, one per line) for a subset"
                )
        index = {w: i for i, w in enumerate(wnids)}
        unknown = sorted({w for _, w in rows if w not in index})
        if unknown:
            raise CommitteeError(f"{label_path}: wnids {unknown[:5]} are not in the class list ({len(unknown)} unknown)")
        pairs = [(stem, index[w]) for stem, w in rows]
    else:
        pairs = []
        for n, line in enumerate(label_path.read_text().splitlines(), 1):
            if not line.strip():
                continue
            parts = line.split()
            if len(parts) != 2 or not parts[1].lstrip("-").isdigit():
                raise CommitteeError(f"{label_path}:{n}: expected '<file> <class index>', got {line!r}")
            pairs.append((parts[0], int(parts[1])))
    by_stem = {p.stem: p.name for p in folder.iterdir() if p.is_file() and _is_image(p)}
    files, labels = [], []
    for name, label in sorted(pairs):
        if not 0 <= label < num_classes:
            raise CommitteeError(f"{label_path}: label {label} of {name} is outside 0..{num_classes - 1}")
        file_name = name if (folder / name).is_file() else by_stem.get(Path(name).stem)
        if file_name is None:
            raise CommitteeError(f"{label_path} lists {name!r} but {folder} has no such image")
        files.append(str((folder / file_name).relative_to(root)))
        labels.append(label)
    return _imagenet(split, root, files, labels, num_classes)


def _imagenet(split: str, root: Path, files: list[str], labels: list[int], num_classes: int) -> ImageFileDataset:
    title = f"ImageNet {'validation' if split == 'val' else split} images in {root}"
    return ImageFileDataset(f"imagenet-{split}", root, files, labels, title, num_classes)


DIGITS_SPLIT_SEED = 0
DIGITS_TEST_FRACTION = 1 / 3


def digits_split() -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """scikit-learn's digits, split (stratified, seeded) into train and test:
    {split: (images (N, 8, 8) float32 in 0..16, labels, original indices)}."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    idx = np.arange(len(digits.target))
    train, test = train_test_split(idx, test_size=DIGITS_TEST_FRACTION, random_state=DIGITS_SPLIT_SEED,
                                   stratify=digits.target)
    images = digits.images.astype(np.float32)
    return {s: (images[i], digits.target[i].astype(np.int64), i) for s, i in (("train", train), ("test", test))}


class DigitsDataset(ArrayImageDataset):
    """A split of scikit-learn's digits; items are the 8x8 float arrays themselves."""

    def __init__(self, split: str = "test"):
        images, labels, original = digits_split()[split]
        content_hash = hashlib.sha256(images.tobytes() + labels.tobytes()).hexdigest()
        super().__init__(f"digits-{split}", images, labels, content_hash,
                         ids=[f"{i:04d}" for i in original])  # index in load_digits(): stable across splits
        self.title = f"scikit-learn handwritten digits ({split} split)"

    def image(self, index: int) -> np.ndarray:
        return self.images[index]
