"""The datasets the classification task reads, by name: what each is and the options it takes
(``--data-option KEY=VALUE``). Kept apart from the loaders, so listing datasets imports no torch."""
from __future__ import annotations

from committee_tasks.core.dataset_options import DatasetOption

CLASSES = DatasetOption("classes", "class names in the members' index order (a,b,c or a file of one name per "
                        "line); default: the sorted names", "names")

DATASETS = {
    "cifar10": ("CIFAR-10 test set: cifar10-test.npz (arrays images, labels) or torchvision's cifar-10-batches-py "
                "in --data-root", ()),
    "imagenet": ("ImageNet validation images: DIR/val/<wnid>/* or DIR/<wnid>/*, or a flat folder with val.txt or "
                 "LOC_val_solution.csv; class indices are the sorted wnids, and their number must be the "
                 "members'", (
                     DatasetOption("class_list", "wnids in class-index order, one per line (for a folder with only "
                                   "some classes)", "path"),
                     DatasetOption("label_file", "labels of a flat folder: val.txt ('<file> <class index>' lines) or "
                                   "Kaggle's LOC_val_solution.csv; each image once, inside --data-root", "path"),
                 )),
    "digits": ("scikit-learn's 8x8 handwritten digits, the held-out split; --split train: the 1,198 its CNNs "
               "were trained on (shipped: no --data-root)", ()),
    "folder": ("your images in one subfolder per class: DIR/<class name>/<image> (DIR/<split>/... with --split); "
               "class indices are the sorted folder names or the classes option's order", (CLASSES,)),
    "csv": ("your images listed in a CSV file of path,label rows (header optional; paths relative to --data-root, "
            "each once; labels are class indices or names)", (
                DatasetOption("file", "the CSV file (relative: to the working directory, else to --data-root)",
                              "path"),
                CLASSES,
            )),
}
DESCRIPTIONS = {name: description for name, (description, _) in DATASETS.items()}
OPTIONS = {name: options for name, (_, options) in DATASETS.items()}
