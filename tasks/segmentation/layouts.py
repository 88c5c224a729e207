"""The datasets the segmentation task reads, by name: mmseg's dataset class and the folders of
images and label maps (kept apart from datasets.py, which imports torch and mmseg, so listing
datasets imports neither)."""
from __future__ import annotations

IGNORE_INDEX = 255

LAYOUTS = {
    # name: (mmseg dataset class, image folder, label folder) with {split} for val/train
    "cityscapes": ("CityscapesDataset", "leftImg8bit/{split}", "gtFine/{split}"),
    "ade20k": ("ADE20KDataset", "images/{split}", "annotations/{split}"),
}
SPLIT_NAMES = {"ade20k": {"val": "validation", "train": "training"}}
TITLES = {"cityscapes": "Cityscapes", "ade20k": "ADE20K"}
