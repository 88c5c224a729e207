"""Kinetics-style video datasets as people have them on disk (``kinetics*``, and ``videos`` for your own).

Layouts (``--data-root DIR``, split ``val`` by default):

* a list file of ``path label`` rows (pytorchvideo's ``LabeledVideoPaths.from_csv`` and
  mmaction2's ``kinetics400_val_list_videos.txt``; space- or comma-separated), next to or above
  the videos: ``DIR/val.csv``, ``DIR/val.txt``, ``DIR/kinetics400_val_list_videos.txt`` ... or
  ``--data-option label_file=FILE``. Paths are relative to ``DIR/val``, ``DIR`` or the list file's folder.
  Labels are class indices or class names;
* the official Kinetics annotation CSV (``label,youtube_id,time_start,time_end,split``) with
  videos named ``<youtube_id>_<start:06d>_<end:06d>.mp4``, flat or in per-class folders;
* one folder per class: ``DIR/val/<class name>/*.mp4`` (or ``DIR/<class name>/*``).

The class order comes from a class file (``--data-option class_list=FILE``, or found in ``DIR``): one name
per line (mmaction2's ``label_map_k400.txt``) or a JSON ``{name: index}`` (PySlowFast's
``kinetics_classnames.json``). Without one, class indices follow the sorted class names, which
is the Kinetics convention. A row whose label is not a known class is kept and skipped when it
is read (counted and reported), like an unreadable video.
"""
from __future__ import annotations

import csv
import hashlib
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from committee_tasks.core.errors import CommitteeError
from committee_tasks.core.files import display_path, parse_json, read_text
from committee_tasks.core.names import check_split
from committee_tasks.core.samples import Sample, SampleDataset, contained_path

from .decoding import VideoFile

log = logging.getLogger(__name__)

VIDEO_SUFFIXES = {".mp4", ".avi", ".mkv", ".webm", ".mov", ".m4v", ".flv", ".mpg", ".mpeg"}
LIST_FILE_NAMES = ("{split}.csv", "{split}.txt", "{split}_list_videos.txt", "kinetics400_{split}_list_videos.txt",
                   "kinetics600_{split}_list_videos.txt", "kinetics700_{split}_list_videos.txt", "{split}list.txt")
CLASS_FILE_NAMES = ("kinetics_classnames.json", "classnames.json", "classes.json", "label_map_k400.txt",
                    "label_map_k600.txt", "label_map_k700.txt", "label_map.txt", "classes.txt", "class_names.txt")


class UnknownLabelError(ValueError):
    """A list row whose label is not in the class file."""


@dataclass(frozen=True)
class VideoRow:
    id: str  # the path relative to the dataset root: stable across machines
    path: Path
    label: int | None  # None: not a known class (the sample is skipped when read)
    raw_label: str


class VideoDataset(SampleDataset):
    """Videos with class labels; decoding happens in the task's `member_inputs`."""

    def __init__(self, name: str, rows: Sequence[VideoRow], classes: Sequence[str] | None, source: str):
        self.name = name
        self.rows = list(rows)
        self.classes = list(classes) if classes is not None else None
        self.source = source
        self._ids = [r.id for r in self.rows]
        if len(set(self._ids)) != len(self._ids):
            dupes = sorted({i for i in self._ids if self._ids.count(i) > 1})[:3]
            raise CommitteeError(f"{source} lists the same video more than once, e.g. {dupes}")

    def fingerprint(self) -> str:
        digest = hashlib.sha256()
        for r in self.rows:  # ids, labels and file sizes: a re-encoded or relabelled video invalidates
            size = r.path.stat().st_size if r.path.is_file() else -1
            digest.update(f"{r.id}\t{r.label}\t{r.raw_label}\t{size}\n".encode())
        return digest.hexdigest()

    def __getitem__(self, index: int) -> Sample:
        row = self.rows[index]
        if row.label is None:
            raise UnknownLabelError(f"label {row.raw_label!r} is not a class of the class file "
                                    f"({len(self.classes or [])} classes)")
        return Sample(row.id, VideoFile(row.path), row.label)


def read_class_file(path: Path) -> list[str]:
    """Class names in index order from a JSON {name: index} or a one-name-per-line text file."""
    text = read_text(path, "class file")
    if path.suffix == ".json":
        mapping = parse_json(text, f"class file {path}")
        if isinstance(mapping, list):
            return [str(n) for n in mapping]
        names = [None] * len(mapping)
        for name, index in mapping.items():
            if not isinstance(index, int) or not 0 <= index < len(mapping) or names[index] is not None:
                raise CommitteeError(f"class file {path}: index {index!r} of {name!r} is not a unique "
                                     f"index in 0..{len(mapping) - 1}")
            names[index] = name.strip('"')  # PySlowFast's file quotes some names
        return names
    return [line.strip() for line in text.splitlines() if line.strip()]


def _find(root: Path, names: Sequence[str], split: str) -> Path | None:
    for name in names:
        for folder in (root, root / "annotations"):
            path = folder / name.format(split=split)
            if path.is_file():
                return path
    return None


def load_kinetics(root: str | Path, split: str | None = None, label_file: str | Path | None = None,
                  class_list: str | Path | None = None, name: str = "kinetics") -> VideoDataset:
    root = Path(root)
    split = "val" if split is None else check_split(split)  # a folder and file-name part: must stay in root
    if not root.is_dir():
        raise CommitteeError(f"--data-root {root} is not a folder; point it at the folder holding the "
                             f"{split} videos and their list file")
    class_file = Path(class_list) if class_list else _find(root, CLASS_FILE_NAMES, split)
    classes = read_class_file(class_file) if class_file else None
    list_file = Path(label_file) if label_file else _find(root, LIST_FILE_NAMES, split)
    if list_file is not None:
        rows, found_classes = _rows_from_list(list_file, root, split, classes)
        source = str(list_file)
    else:
        rows, found_classes = _rows_from_folders(root, split, classes)
        source = f"class folders under {rows[0].path.parent.parent if rows else root}"
    if classes is None:
        classes = found_classes
    if not rows:
        raise CommitteeError(f"no videos found in {root}: expected a list file ({', '.join(n.format(split=split) for n in LIST_FILE_NAMES[:3])}, "
                             f"or --data-option label_file=FILE) or one folder of videos per class in "
                             f"{root / split} or {root}")
    unknown = sum(r.label is None for r in rows)
    if unknown:
        log.warning("%d of %d videos have labels not in the class file; they will be skipped", unknown, len(rows))
    log.info("%s: %d videos, %d classes (%s)", name, len(rows), len(classes or []),
             f"class file {class_file}" if class_file else "classes in sorted name order")
    video = VideoDataset(f"{name}-{split}", rows, classes, source)
    # a class file names the members' label set; so do class folders, whose sorted names are the
    # labels: a folder for only some of the classes relabels the rest (a subset of Kinetics' 400
    # folders scored a correct model 0), so their count is checked against the members' too
    video.num_classes = len(classes) if class_file or list_file is None else None
    video.classes_fix = ("give the full class list in the members' order, --data-option class_list=FILE (one name "
                         "per line; Kinetics: the model's published class list), so that a folder for some of the "
                         "classes keeps its class's index")
    if name.startswith("kinetics"):
        pretty = re.sub(r"^kinetics(\d+)$", r"Kinetics-\1", name)
        video.title = f"{pretty} {split} split"
    else:  # your own videos: no dataset name to show
        video.title = f"videos in {display_path(root)} ({split} split)"
    return video


def _label_index(raw: str, classes: list[str] | None, index_of: dict[str, int]) -> int | None:
    if raw.lstrip("-").isdigit():
        value = int(raw)
        return value if value >= 0 and (classes is None or value < len(classes)) else None
    return index_of.get(raw)


def _rows_from_list(list_file: Path, root: Path, split: str, classes: list[str] | None):
    lines = [ln for ln in read_text(list_file, "list file").splitlines() if ln.strip()]
    if lines and lines[0].replace(" ", "").lower().startswith("label,youtube_id"):
        return _rows_from_official_csv(lines, list_file, root, split, classes)
    pairs = []
    for number, line in enumerate(lines, 1):
        parts = _path_and_label(line)
        if parts is None:
            raise CommitteeError(f"{list_file}:{number}: expected 'path label' or 'path,label', got {line!r}")
        pairs.append((contained_path(parts[0], f"{list_file}:{number}"), parts[1]))
    names = sorted({label for _, label in pairs if not label.lstrip("-").isdigit()})
    if classes is None and names:
        classes = names
        log.warning("%s labels videos by class name and no class file was given: class indices follow the "
                    "sorted names (the Kinetics order); pass --data-option class_list=FILE for the models' order",
                    list_file)
    index_of = {c: i for i, c in enumerate(classes or [])}
    prefix = _video_prefix([p for p, _ in pairs[:20]], [root / split, root, list_file.parent])
    rows = [VideoRow(rel, prefix / rel, _label_index(label, classes, index_of), label) for rel, label in pairs]
    return rows, classes


# a row's path ends at its video suffix: class names (Kinetics' "air drumming") and folders may hold spaces
_ROW = re.compile(r"^\s*(.+(?:%s))(?:\s*,\s*|\s+)(\S.*?)\s*$" % "|".join(re.escape(s) for s in sorted(VIDEO_SUFFIXES)),
                  re.IGNORECASE)


def _path_and_label(line: str) -> tuple[str, str] | None:
    """(path, label) of a list file's row, separated by whitespace or a comma. Where the path ends
    in a video suffix, the label is everything after it (so it may hold spaces); otherwise the
    row splits at its last comma or whitespace."""
    match = _ROW.match(line)
    if match:
        return match[1].strip(), match[2]
    parts = line.rsplit(",", 1) if "," in line else line.rsplit(None, 1)
    return (parts[0].strip(), parts[1].strip()) if len(parts) == 2 and parts[0].strip() and parts[1].strip() else None


def _video_prefix(sample_paths: Sequence[str], candidates: Sequence[Path]) -> Path:
    """The folder the list's relative paths resolve in (the first where most of them exist)."""
    best, hits = candidates[0], -1
    for folder in candidates:
        found = sum((folder / p).is_file() for p in sample_paths)
        if found > hits:
            best, hits = folder, found
    return best


def _rows_from_official_csv(lines: list[str], list_file: Path, root: Path, split: str, classes: list[str] | None):
    records = list(csv.DictReader(lines))
    if classes is None:
        classes = sorted({r["label"] for r in records})
    index_of = {c: i for i, c in enumerate(classes)}
    base = root / split if (root / split).is_dir() else root
    rows = []
    for number, r in enumerate(records, 2):
        stem = f"{r['youtube_id']}_{int(float(r['time_start'])):06d}_{int(float(r['time_end'])):06d}"
        contained_path(f"{r['label']}/{stem}", f"{list_file}:{number}")  # both become parts of a path
        path = _official_video_path(base, r["label"], stem)
        rows.append(VideoRow(str(path.relative_to(base)), path, index_of.get(r["label"]), r["label"]))
    return rows, classes


def _official_video_path(base: Path, label: str, stem: str) -> Path:
    for folder in (base / label, base / label.replace(" ", "_"), base):
        for suffix in (".mp4", ".mkv", ".webm", ".avi"):
            if (folder / (stem + suffix)).is_file():
                return folder / (stem + suffix)
    return base / label / (stem + ".mp4")  # missing: skipped with "no such file" when read


def _rows_from_folders(root: Path, split: str, classes: list[str] | None):
    base = root / split if (root / split).is_dir() else root
    folders = sorted(p for p in base.iterdir() if p.is_dir())
    found = [f.name for f in folders]
    if classes is None:
        classes = found
    index_of = {c: i for i, c in enumerate(classes)}
    index_of.update({c.replace(" ", "_"): i for i, c in enumerate(classes)})  # folder names often use _
    rows = []
    for folder in folders:
        for path in sorted(folder.iterdir()):
            if path.suffix.lower() in VIDEO_SUFFIXES:
                rows.append(VideoRow(str(path.relative_to(base)), path, index_of.get(folder.name), folder.name))
    return rows, classes
