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
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image

from committee_tasks.core.files import display_path
from committee_tasks.core.errors import CommitteeError
from committee_tasks.core.file_hashes import remembered_sha256s
from committee_tasks.core.safe_pickle import load_data_pickle
from committee_tasks.core.names import check_split
from committee_tasks.core.samples import Sample, SampleDataset, contained_path

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

    classes_fix = "a model of other classes needs a class map onto the dataset's: outputs={'class_map': [...]}"

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


CIFAR_CONVERT = ("Convert the test set to cifar10-test.npz, arrays images (N, 32, 32, 3) uint8 and labels (N,) int, "
                 "from a copy you trust (numpy.savez), or download it again (torchvision.datasets.CIFAR10).")


def _cifar_batch(path: Path, raw: bytes) -> tuple[np.ndarray, np.ndarray]:
    """A CIFAR-10 python batch: a dict with ``data`` (N, 3072) uint8 and ``labels`` (N ints), read
    with an unpickler that admits only numpy's arrays (Python 2's str keys arrive as str)."""
    batch = load_data_pickle(path, raw, CIFAR_CONVERT)
    if isinstance(batch, dict):
        batch = {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in batch.items()}
    if not isinstance(batch, dict) or not {"data", "labels"} <= set(batch):
        raise CommitteeError(f"{path}: not a CIFAR-10 batch (a dict with 'data' and 'labels'). {CIFAR_CONVERT}")
    data, labels = batch["data"], batch["labels"]
    if not (isinstance(data, np.ndarray) and data.dtype == np.uint8 and data.ndim == 2 and data.shape[1] == 3072):
        what = f"{data.dtype} array of shape {data.shape}" if isinstance(data, np.ndarray) else type(data).__name__
        raise CommitteeError(f"{path}: 'data' must be a uint8 array (N, 3072), got a {what}. {CIFAR_CONVERT}")
    if not (isinstance(labels, (list, np.ndarray)) and len(labels) == len(data) and all(
            isinstance(y, (int, np.integer)) and not isinstance(y, bool) and 0 <= y < 10 for y in labels)):
        raise CommitteeError(f"{path}: 'labels' must be {len(data)} integers in 0..9. {CIFAR_CONVERT}")
    return data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1), np.asarray(labels, dtype=np.int64)


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
            try:
                with np.load(path) as data:  # allow_pickle=False (the default): no objects, no code
                    images, labels = data["images"], data["labels"]
            except Exception as err:  # not a zip, a missing array, an object array
                raise CommitteeError(f"{path}: not a readable cifar10-test.npz ({type(err).__name__}: {err}); "
                                     "it needs arrays images (N, 32, 32, 3) uint8 and labels (N,) int") from None
            if images.dtype != np.uint8 or not np.issubdtype(labels.dtype, np.integer):
                raise CommitteeError(f"{path}: images must be uint8 and labels integers, got {images.dtype} "
                                     f"and {labels.dtype}")
        else:  # the original python pickle torchvision downloads: data only, never code
            images, labels = _cifar_batch(path, raw)
        if images.shape[1:] != (32, 32, 3) or len(images) != len(labels):
            raise CommitteeError(f"{path}: expected images (N, 32, 32, 3) and N labels, got "
                                 f"{images.shape} and {labels.shape}")
        dataset = ArrayImageDataset("cifar10-test", np.ascontiguousarray(images), labels.astype(np.int64),
                                    content_hash)
        dataset.title = "CIFAR-10 test set"
        dataset.num_classes = 10  # a 100-class member on it was scored silently (top-1 about 0)
        return dataset
    raise CommitteeError(
        f"no CIFAR-10 test set under {root}: expected one of "
        + ", ".join(str(c) for c in candidates[1:])
        + " (cifar10-test.npz with arrays images/labels, or torchvision's cifar-10-batches-py)"
    )


SIXTEEN_BIT_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I")


def to_rgb(img: Image.Image) -> Image.Image:
    """``img`` as 8-bit RGB, its values read as they are. PIL's ``convert("RGB")`` clips 16-bit
    grayscale (a PNG of uint16) to 255, so those are scaled: value * 255 / 65535, rounded ("I", a
    32-bit integer image, is read as 16-bit and refused beyond 0..65535). A 32-bit float image ("F")
    has no defined range: refused, so the sample is skipped with the reason rather than guessed.
    Every other mode converts as PIL does: palette ("P") through its palette, grayscale replicated,
    and an alpha channel ("LA", "RGBA", "PA") dropped, not composited onto a background."""
    if img.mode in SIXTEEN_BIT_MODES:
        values = np.asarray(img).astype(np.float64)  # also forces the full decode
        if img.mode == "I" and values.size and (values.min() < 0 or values.max() > 65535):
            raise ValueError(f"32-bit integer image with values {values.min():.0f}..{values.max():.0f}, beyond the "
                             "16-bit range: save it as an 8- or 16-bit image")
        gray = Image.fromarray(np.round(values * (255 / 65535)).astype(np.uint8))
        return gray.convert("RGB")
    if img.mode == "F":
        raise ValueError("32-bit floating-point image: its value range is not defined; save it as an 8- or 16-bit "
                         "image")
    return img.convert("RGB")  # also forces the full decode: a truncated file fails here


def read_rgb(path: str | Path) -> Image.Image:
    """An image file as the image datasets read theirs: decoded in full, as 8-bit RGB (`to_rgb`)."""
    with Image.open(path) as img:
        return to_rgb(img)


class ImageFileDataset(SampleDataset):
    """Image files with integer labels; the id is the path relative to the root. ``num_classes``:
    the classes the labels index (None: unknown; then only labels beyond the members' are refused).
    ``classes_fix``: how to make the classes match the members' (for the error when they do not)."""

    def __init__(self, name: str, root: Path, files: list[str], labels: list[int], title: str = "",
                 num_classes: int | None = None, classes_fix: str = ""):
        self.name = name
        self.title = title or f"images in {display_path(root)}"
        self.root = root
        self.files = self._ids = files
        self.labels = labels
        self.num_classes = num_classes
        if classes_fix:
            self.classes_fix = classes_fix

    def check_classes(self, num_classes: int) -> None:
        super().check_classes(num_classes)
        beyond = [(f, y) for f, y in zip(self.files, self.labels) if y >= num_classes]
        if beyond:
            raise CommitteeError(f"{self.describe()}: {beyond[0][0]} has class index {beyond[0][1]} but the members "
                                 f"predict {num_classes} classes ({len(beyond)} such images)")

    def fingerprint(self) -> str:
        # File list, labels and each file's sha256: an image overwritten by another of the same size
        # changes it. Each file is read once; later runs take its hash from the index (file_hashes).
        # A file unreadable now counts as such: the loop skips it, and once readable it changes this.
        digests = remembered_sha256s([self.root / f for f in self.files])
        return _hash_strings([f"{f}|{d or 'unreadable'}|{y}" for f, d, y in zip(self.files, digests, self.labels)])

    def __getitem__(self, index: int) -> Sample:
        return Sample(self.files[index], read_rgb(self.root / self.files[index]), self.labels[index])


def _is_image(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_EXTENSIONS


def read_class_list(path: Path) -> list[str]:
    """wnids in class-index order, one per line (first token of each line)."""
    try:
        wnids = [line.split()[0] for line in Path(path).read_text().splitlines() if line.strip()]
    except (OSError, UnicodeDecodeError) as err:
        raise CommitteeError(f"class list {path}: cannot read it as text ({err})") from None
    refuse_duplicates([(w, n) for n, w in enumerate(wnids, 1)], path, "class")
    return wnids


def refuse_duplicates(entries: Sequence[tuple[str, int]], path: Path | str, what: str = "file") -> None:
    """Refuse a label file listing one entry twice (``entries``: (key, line number)): it would be
    scored twice, with the last line's label."""
    lines: dict[str, list[int]] = {}
    for key, number in entries:
        lines.setdefault(key, []).append(number)
    repeated = [(key, numbers) for key, numbers in lines.items() if len(numbers) > 1]
    if repeated:
        key, numbers = repeated[0]
        raise CommitteeError(f"{path} lists the {what} {key!r} more than once (lines {', '.join(map(str, numbers))})"
                             f"{f' and {len(repeated) - 1} more such {what}s' if len(repeated) > 1 else ''}: "
                             "list each once, with its one label")


IMAGENET_CLASSES_FIX = ("for a folder with only some of the classes, pass --data-option class_list=FILE: every wnid "
                        "the members predict, in index order, one per line")


def load_imagenet(root: str | Path, split: str = "val", class_list: str | Path | None = None,
                  label_file: str | Path | None = None, num_classes: int | None = None) -> ImageFileDataset:
    """ImageNet-layout images. Their number of classes is the class list's, else the class
    folders' (or the Kaggle file's wnids); unknown for a val.txt of indices without a class list.
    The loop compares it with the members' (`check_classes`); ``num_classes``, when a caller knows
    the members' count beforehand, refuses a mismatch here already."""
    root = Path(root)
    if not root.is_dir():
        raise CommitteeError(f"ImageNet root {root} is not a folder")
    check_split(split)  # '../../x' would read another folder
    folder = root / split if (root / split).is_dir() else root
    class_dirs = sorted(p.name for p in folder.iterdir() if p.is_dir())
    wnids = read_class_list(Path(class_list)) if class_list else None
    if wnids is not None and num_classes is not None and len(wnids) != num_classes:
        raise CommitteeError(f"class list {class_list} has {len(wnids)} wnids but the models predict "
                             f"{num_classes} classes: list every class, in index order")

    if class_dirs and label_file is None:  # <folder>/<wnid>/<image>
        if wnids is None:
            if num_classes is not None and len(class_dirs) != num_classes:
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
        return _imagenet(split, root, files, labels, len(wnids))

    label_path = Path(label_file) if label_file else next(
        (p for p in (root / "val.txt", root / "LOC_val_solution.csv", folder / "val.txt") if p.is_file()), None)
    if label_path is None:
        raise CommitteeError(
            f"{folder} has no class folders and no label file: use <root>/val/<wnid>/<image>, or a flat "
            "folder with val.txt ('<file> <class index>' lines) or LOC_val_solution.csv, or pass "
            "--data-option label_file=FILE"
        )
    try:
        text = label_path.read_text()
    except (OSError, UnicodeDecodeError) as err:
        raise CommitteeError(f"label file {label_path}: cannot read it as text ({err})") from None
    if label_path.suffix == ".csv":  # Kaggle: ImageId,PredictionString ("<wnid> x y x y ...")
        reader = csv.DictReader(text.splitlines())
        if not {"ImageId", "PredictionString"} <= set(reader.fieldnames or ()):
            raise CommitteeError(f"{label_path}: expected Kaggle's columns ImageId,PredictionString, "
                                 f"got {reader.fieldnames}")
        rows = []
        for r in reader:
            if not (r["ImageId"] or "").strip() or not (r["PredictionString"] or "").split():
                raise CommitteeError(f"{label_path}:{reader.line_num}: expected '<image id>,<wnid> ...', got {r}")
            rows.append((r["ImageId"].strip(), r["PredictionString"].split()[0], reader.line_num))
        if wnids is None:
            wnids = sorted({w for _, w, _ in rows})
            if num_classes is not None and len(wnids) != num_classes:
                raise CommitteeError(
                    f"{label_path} names {len(wnids)} classes but the models predict {num_classes} classes: "
                    "class indices come from the sorted wnids only when all are present. Pass --data-option "
                    "class_list=FILE (the wnids in index order, one per line) for a subset"
                )
        index = {w: i for i, w in enumerate(wnids)}
        unknown = sorted({w for _, w, _ in rows if w not in index})
        if unknown:
            raise CommitteeError(f"{label_path}: wnids {unknown[:5]} are not in the class list ({len(unknown)} unknown)")
        triples = [(stem, index[w], n) for stem, w, n in rows]
    else:
        triples = []
        for n, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            parts = line.split()
            if len(parts) != 2 or not parts[1].lstrip("-").isdigit():
                raise CommitteeError(f"{label_path}:{n}: expected '<file> <class index>', got {line!r}")
            triples.append((parts[0], int(parts[1]), n))
    count = len(wnids) if wnids is not None else num_classes  # None: only the members know
    by_stem = {p.stem: p.name for p in folder.iterdir() if p.is_file() and _is_image(p)}
    found = []
    for name, label, n in triples:
        where = f"{label_path}:{n}"
        if label < 0 or (count is not None and label >= count):
            bound = f"0..{count - 1}" if count is not None else "0 or more"
            raise CommitteeError(f"{where}: label {label} of {name} is outside {bound}")
        contained_path(name, where)  # a listed '../x' or '/x' would be read outside the data root
        file_name = name if (folder / name).is_file() else by_stem.get(Path(name).stem)
        if file_name is None:
            raise CommitteeError(f"{label_path} lists {name!r} but {folder} has no such image")
        found.append((str((folder / file_name).relative_to(root)), label, n))
    refuse_duplicates([(f, n) for f, _, n in found], label_path, "image")  # also 'x.JPEG' and 'x': one file
    found.sort()
    return _imagenet(split, root, [f for f, _, _ in found], [y for _, y, _ in found], count)


def _imagenet(split: str, root: Path, files: list[str], labels: list[int],
              num_classes: int | None) -> ImageFileDataset:
    title = f"ImageNet {'validation' if split == 'val' else split} images in {display_path(root)}"
    return ImageFileDataset(f"imagenet-{split}", root, files, labels, title, num_classes, IMAGENET_CLASSES_FIX)


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
        self.num_classes = 10

    def image(self, index: int) -> np.ndarray:
        return self.images[index]
