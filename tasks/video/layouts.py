"""The datasets the video task reads, by name: what each is and the options it takes
(``--data-option KEY=VALUE``). Kept apart from the loaders, so listing datasets imports no torch."""
from __future__ import annotations

from committee_tasks.core.dataset_options import DatasetOption

LIST_OPTIONS = (
    DatasetOption("label_file", "the list file of 'path label' rows (default: one found in DIR, e.g. val.csv, "
                  "val.txt)", "path"),
    DatasetOption("class_list", "class names in index order: one per line, or JSON {name: index} (default: a class "
                  "file found in DIR, else the sorted class names)", "path"),
)
_KINETICS = ("Kinetics-{n} videos: a list file of 'path label' rows, the official annotation CSV or one folder per "
             "class under DIR/<split> or DIR (split val by default)")
DATASETS = {
    "kinetics400": (_KINETICS.format(n=400), LIST_OPTIONS),
    "kinetics600": (_KINETICS.format(n=600), LIST_OPTIONS),
    "kinetics700": (_KINETICS.format(n=700), LIST_OPTIONS),
    "kinetics": ("Kinetics videos of any version, read as kinetics400 is", LIST_OPTIONS),
    "videos": ("your videos: a list file of 'path label' rows (labels as class indices or names) or one folder of "
               "videos per class, under DIR/<split> or DIR (split val by default)", LIST_OPTIONS),
}
DESCRIPTIONS = {name: description for name, (description, _) in DATASETS.items()}
OPTIONS = {name: options for name, (_, options) in DATASETS.items()}
