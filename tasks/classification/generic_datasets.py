"""Your own image classification data, with its own class names (not ImageNet's wnids):

* ``folder``: one subfolder per class, ``DIR/<class name>/**/<image>`` (``DIR/<split>/...`` with
  ``--split``), torchvision ``ImageFolder``'s layout. Class indices are the sorted folder names, or
  the order of the ``classes`` option, which also allows folders for only some of the classes.
* ``csv``: a CSV file of ``path,label`` rows (a header row is optional), paths relative to
  ``--data-root``; labels are class indices, or class names indexed by the ``classes`` option's
  order (else by their sorted order).

Images are read as `ImageFileDataset` reads ImageNet's: a file that cannot be decoded is skipped,
counted and reported when the loop reaches it.
"""
from __future__ import annotations

import csv
import logging
import os
from pathlib import Path
from typing import Sequence

from committee_tasks.core.errors import CommitteeError
from committee_tasks.core.names import check_split
from committee_tasks.core.samples import contained_path

from .datasets import IMAGE_EXTENSIONS, ImageFileDataset, refuse_duplicates

log = logging.getLogger(__name__)


def load_image_folder(root: str | Path, split: str | None = None,
                      classes: Sequence[str] | None = None) -> ImageFileDataset:
    """``root`` (or ``root/split``) holding one folder of images per class."""
    folder = Path(root) / check_split(split) if split else Path(root)
    if not folder.is_dir():
        raise CommitteeError(f"image folder {folder} is not a folder: point --data-root at the folder holding one "
                             "subfolder of images per class")
    class_dirs = sorted(p.name for p in folder.iterdir() if p.is_dir())
    if not class_dirs:
        raise CommitteeError(f"{folder} has no class subfolders: expected {folder}/<class name>/<image>")
    names = _unique(list(classes), "the classes option") if classes else class_dirs
    index = {name: i for i, name in enumerate(names)}
    unknown = [d for d in class_dirs if d not in index]
    if unknown:
        raise CommitteeError(f"class folders {unknown[:5]} of {folder} are not among the {len(names)} names of the "
                             f"classes option ({len(unknown)} unknown): name every class, in the members' order")
    files, labels = [], []
    for name in class_dirs:
        for path in sorted((folder / name).rglob("*")):
            if path.is_file() and path.suffix.lower() in IMAGE_EXTENSIONS:
                files.append(str(path.relative_to(root)))
                labels.append(index[name])
    if not files:
        raise CommitteeError(f"the class folders of {folder} hold no images ({', '.join(IMAGE_EXTENSIONS)})")
    return ImageFileDataset(f"folder-{folder.name}", Path(root), files, labels,
                            f"images of {len(names)} classes in {folder}", num_classes=len(names))


def load_image_csv(root: str | Path, file: Path | None, classes: Sequence[str] | None = None) -> ImageFileDataset:
    """The images a CSV file lists with their labels."""
    root = Path(root)
    if file is None:
        raise CommitteeError("dataset 'csv' needs --data-option file=LIST.csv (rows path,label; paths relative to "
                             "--data-root)")
    path = file if file.is_file() or file.is_absolute() else root / file
    try:
        with open(path, newline="") as f:
            rows = [(number, row) for number, row in enumerate(csv.reader(f), 1) if any(c.strip() for c in row)]
    except OSError as err:
        raise CommitteeError(f"CSV file {path}: cannot read it ({err}); rows path,label") from None
    except (csv.Error, UnicodeDecodeError) as err:
        raise CommitteeError(f"CSV file {path}: not a CSV file ({err})") from None
    for number, row in rows:
        if len(row) != 2:
            raise CommitteeError(f"{path}:{number}: expected 'path,label', got {','.join(row)!r}")
    rows = [(number, (p.strip(), label.strip())) for number, (p, label) in rows]
    names = _unique(list(classes), "the classes option") if classes else None
    if rows and _is_header(rows[0][1], root, names):
        rows = rows[1:]
    if not rows:
        raise CommitteeError(f"CSV file {path} lists no images (rows path,label)")
    labels, num_classes = _labels(rows, path, names)
    files = []
    for (number, (image, _)), label in zip(rows, labels):
        contained_path(image, f"{path}:{number}")  # a listed '../x' or '/x' would be read outside the root
        if not (root / image).is_file():
            raise CommitteeError(f"{path}:{number}: {image!r} is not a file under --data-root {root}")
        files.append(image)
    # one file listed twice (also as 'a.png' and './a.png') would be scored twice with the last label
    refuse_duplicates([(os.path.normpath(f), number) for f, (number, _) in zip(files, rows)], path, "image")
    return ImageFileDataset(f"csv-{path.stem}", root, files, labels, f"images listed in {path}", num_classes)


def _unique(names: list[str], what: str) -> list[str]:
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise CommitteeError(f"{what} names {repeated[:5]} more than once")
    return names


def _is_index(label: str) -> bool:
    return label.lstrip("-").isdigit()


def _is_header(row: tuple[str, str], root: Path, names: list[str] | None) -> bool:
    """A first row that is no image with a label (``path,label``) is a header."""
    image, label = row
    return not (root / image).is_file() and not _is_index(label) and (names is None or label not in names)


def _labels(rows: list[tuple[int, tuple[str, str]]], path: Path,
            names: list[str] | None) -> tuple[list[int], int | None]:
    """Class indices of the rows, and the number of classes (None: index labels, no class names)."""
    if names is None:
        kinds = {_is_index(label) for _, (_, label) in rows}
        if kinds == {True}:
            return [_index(label, number, path, None) for number, (_, label) in rows], None
        if kinds == {False}:
            names = sorted({label for _, (_, label) in rows})
            log.info("%s: %d classes, indexed by their sorted names (pass --data-option classes=... for the "
                     "members' order)", path, len(names))
        else:  # the odd one out is named: the first row of the rarer kind
            indices = sum(_is_index(label) for _, (_, label) in rows)
            odd = indices <= len(rows) - indices
            number, label = next((n, lb) for n, (_, lb) in rows if _is_index(lb) == odd)
            this, rest = (("a class index", f"{len(rows) - indices} of the {len(rows)} rows name classes") if odd
                          else ("not a class index", f"{indices} of the {len(rows)} rows give class indices"))
            raise CommitteeError(f"{path}:{number}: label {label!r} is {this} but {rest}; use one kind, or give the "
                                 "class names in index order (--data-option classes=...)")
    index = {name: i for i, name in enumerate(names)}
    labels = []
    for number, (_, label) in rows:
        labels.append(index[label] if label in index else _index(label, number, path, names))
    return labels, len(names)


def _index(label: str, number: int, path: Path, names: list[str] | None) -> int:
    if not _is_index(label):
        names = names or []
        shown = ", ".join(repr(n) for n in names[:8]) + (", ..." if len(names) > 8 else "")
        raise CommitteeError(f"{path}:{number}: label {label!r} is not one of the {len(names)} classes ({shown})")
    value = int(label)
    if value < 0 or (names is not None and value >= len(names)):
        bound = f"0..{len(names) - 1}" if names else "0 or more"
        raise CommitteeError(f"{path}:{number}: class index {value} is outside {bound}")
    return value
