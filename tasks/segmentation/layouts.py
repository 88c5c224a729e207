"""The datasets the segmentation task reads, by name: mmseg's dataset class and the folders of
images and label maps, what each dataset is and the options it takes (``--data-option``). Kept
apart from datasets.py, which imports torch and mmseg, so listing datasets imports neither."""
from __future__ import annotations

from committee_tasks.core.dataset_options import DatasetOption

IGNORE_INDEX = 255

LAYOUTS = {
    # name: (mmseg dataset class, image folder, label folder) with {split} for val/train
    "cityscapes": ("CityscapesDataset", "leftImg8bit/{split}", "gtFine/{split}"),
    "ade20k": ("ADE20KDataset", "images/{split}", "annotations/{split}"),
}
SPLIT_NAMES = {"ade20k": {"val": "validation", "train": "training"}}
TITLES = {"cityscapes": "Cityscapes", "ade20k": "ADE20K"}

FOLDER = "folder"  # your own images and label maps
DATASETS = (*LAYOUTS, FOLDER)
DESCRIPTIONS = {
    "cityscapes": "Cityscapes as mmseg reads it: DIR/leftImg8bit/<split>/<city>/*_leftImg8bit.png and "
                  "DIR/gtFine/<split>/<city>/*_gtFine_labelTrainIds.png (split val by default)",
    "ade20k": "ADE20K as mmseg reads it: DIR/images/validation/*.jpg and DIR/annotations/validation/*.png "
              "(0 = other, ignored)",
    FOLDER: "your images and label maps: DIR/<images>/**/<image> and DIR/<labels>/**/<label_name>, one class id "
            "per pixel (or RGB colours with a palette)",
}
FOLDER_OPTIONS = (
    DatasetOption("images", "folder of the images under --data-root ({split}: the --split value)", "str", "images"),
    DatasetOption("labels", "folder of the label maps under --data-root ({split} as for images)", "str", "labels"),
    DatasetOption("label_name", "a label map's file name from its image's: {stem} (name without suffix), {name} "
                  "(full name), e.g. {stem}_L.png", "str", "{stem}.png"),
    DatasetOption("image_suffix", "read only images whose name ends with it, and take {stem} as the name without "
                  "it (mmseg's img_suffix), e.g. _leftImg8bit.png", "str"),
    DatasetOption("classes", "class names in id order (a,b,c or a file of one name per line); this or num_classes",
                  "names"),
    DatasetOption("num_classes", "the number of classes, when no names are given", "int"),
    DatasetOption("ignore_index", "label id of pixels left out of the metric (void)", "int", IGNORE_INDEX),
    DatasetOption("reduce_zero_label", "id 0 is 'other' and ignored, ids 1.. become 0.. (mmseg's reduce_zero_label)",
                  "bool", False),
    DatasetOption("palette", "for RGB label maps: [[r, g, b], ...] per class id (JSON or a .json file); a colour "
                  "not in it is an unknown id", "json"),
)
OPTIONS = {FOLDER: FOLDER_OPTIONS}
