"""Generic datasets and the options each task declares for its datasets (``--data-option KEY=VALUE``):
typed and refused by the task's declarations, from the command line, a config file or the API;
classification's ``folder`` and ``csv``; segmentation's ``folder`` (on the real CamVid test split
when ../shared/data is present, and on tiny written files); video's ``videos``."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from committee_tasks.api.evaluation import build_dataset, calibration_dataset
from committee_tasks.api.options import CalibrationOptions, DataOptions
from committee_tasks.api.pool import Pool
from committee_tasks.cli.arguments import calibration_options, data_options
from committee_tasks.cli.config import parse_args
from committee_tasks.cli.eval import build_parser
from committee_tasks.core.dataset_options import DatasetOption, OptionValue, parse_dataset_options
from committee_tasks.core.errors import CommitteeError
from committee_tasks.core.members import Member
from committee_tasks.core.registry import get_task
from tests.conftest import SHARED_DATA

CAMVID = SHARED_DATA / "camvid"
CAMVID_CLASSES = ["Sky", "Building", "Pole", "Road", "Pavement", "Tree", "SignSymbol", "Fence", "Car", "Pedestrian",
                  "Bicyclist"]
needs_camvid = pytest.mark.skipif(not (CAMVID / "testannot").is_dir(),
                                  reason=f"the CamVid test split is not at {CAMVID} (set COMMITTEE_TASKS_SHARED_DATA "
                                         "to the folder holding camvid/); a fresh clone skips the real-data checks")


def write_image(path: Path, seed: int, size=(12, 10), mode="RGB") -> Path:
    rng = np.random.default_rng(seed)
    shape = (size[1], size[0], 3) if mode == "RGB" else (size[1], size[0])
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode).save(path)
    return path


# ---- options declared by the task ------------------------------------------------------------
OPTIONS = (DatasetOption("file", "a file", "path"), DatasetOption("count", "a count", "int", 3),
           DatasetOption("rate", "a rate", "float"), DatasetOption("flag", "a flag", "bool", False),
           DatasetOption("names", "names", "names"), DatasetOption("table", "a table", "json"),
           DatasetOption("label", "a label", "str", "{stem}.png"))


def test_values_are_typed_by_their_kind_and_defaults_fill_the_rest(tmp_path):
    (tmp_path / "names.txt").write_text("traffic light\n\nperson\n")
    (tmp_path / "table.json").write_text("[[1, 2, 3]]")
    typed = parse_dataset_options("mine", OPTIONS, {"count": "7", "rate": "0.5", "flag": "yes", "names": "a, b,c"})
    assert typed == {"file": None, "count": 7, "rate": 0.5, "flag": True, "names": ("a", "b", "c"), "table": None,
                     "label": "{stem}.png"}
    typed = parse_dataset_options("mine", OPTIONS, {  # as a config file or the API gives them
        "file": OptionValue("file", "data/x.csv", tmp_path), "names": OptionValue("names", "names.txt", tmp_path),
        "table": str(tmp_path / "table.json"), "count": 11, "flag": False})
    assert typed["file"] == tmp_path / "data" / "x.csv" and typed["names"] == ("traffic light", "person")
    assert typed["table"] == [[1, 2, 3]] and typed["count"] == 11 and typed["flag"] is False
    assert parse_dataset_options("mine", OPTIONS, {"table": "[[0, 0, 0]]", "names": ["x", "y"]})["names"] == ("x", "y")


@pytest.mark.parametrize("values, message", [
    ({"cont": "1"}, "unknown --data-option key 'cont'; did you mean 'count'"),
    ({"count": "2.5"}, "dataset 'mine', --data-option count: '2.5' is refused: expected an integer"),
    ({"count": True}, "True is refused: expected an integer"),
    ({"flag": "maybe"}, "'maybe' is refused: expected true or false"),
    ({"rate": "fast"}, "'fast' is refused: expected a number"),
    ({"names": "nowhere.txt"}, "file of names nowhere.txt: no such file"),
    ({"table": "[1, 2"}, "inline JSON '[1, 2': not valid JSON"),
    ({"file": 3}, "3 is refused: expected a path"),
])
def test_unknown_keys_and_bad_values_are_refused_with_what_is_expected(values, message):
    with pytest.raises(CommitteeError, match=message.replace("[", r"\[").replace("(", r"\(")):
        parse_dataset_options("mine", OPTIONS, values)


def test_every_valid_key_is_named_and_a_dataset_without_options_says_so():
    with pytest.raises(CommitteeError) as err:
        parse_dataset_options("mine", OPTIONS, {"zzz": "1"})
    assert "(dataset 'mine' takes file, count, rate, flag, names, table, label)" in str(err.value)
    task = get_task("classification")
    with pytest.raises(CommitteeError, match="dataset 'cifar10' takes no options, got --data-option ignore_index="):
        task.read_dataset_options("cifar10", {"ignore_index": "3"})
    with pytest.raises(CommitteeError, match="unknown dataset 'imagenett'"):
        task.read_dataset_options("imagenett", {})


def test_data_options_from_the_command_line_and_from_a_config(tmp_path, monkeypatch):
    args = parse_args(build_parser(), ["--dataset", "csv", "--data-option", "file=a.csv",
                                       "--data-option", "classes=cat,dog", "--calibration-dataset", "folder",
                                       "--calibration-data-option", "classes=x,y"])
    data = data_options(args)
    task = get_task("classification")
    assert task.read_dataset_options("csv", data.options) == {"file": Path("a.csv"), "classes": ("cat", "dog")}
    assert task.read_dataset_options("folder", calibration_options(args).options) == {"classes": ("x", "y")}
    # in a config: a mapping (or KEY=VALUE strings); relative paths start at the config's folder
    (tmp_path / "conf").mkdir()
    config = tmp_path / "conf" / "run.json"
    config.write_text(json.dumps({"dataset": "csv", "data_option": {"file": "lists/a.csv", "classes": ["b", "a"]}}))
    monkeypatch.chdir(tmp_path)
    options = data_options(parse_args(build_parser(), ["--config", str(config)])).options
    assert task.read_dataset_options("csv", options) == {"file": tmp_path / "conf" / "lists" / "a.csv",
                                                         "classes": ("b", "a")}
    config.write_text(json.dumps({"dataset": "csv", "data-option": ["file=lists/b.csv"]}))
    options = data_options(parse_args(build_parser(), ["--config", str(config)])).options
    assert task.read_dataset_options("csv", options)["file"] == tmp_path / "conf" / "lists" / "b.csv"
    # the command line replaces the config's options; its paths are the working directory's
    options = data_options(parse_args(build_parser(), ["--config", str(config), "--data-option", "file=c.csv"])).options
    assert task.read_dataset_options("csv", options)["file"] == Path("c.csv")


def test_bad_data_option_flags_are_refused(tmp_path, capsys):
    with pytest.raises(SystemExit):
        parse_args(build_parser(), ["--data-option", "classes"])
    assert "expected KEY=VALUE (e.g. ignore_index=11), got 'classes'" in capsys.readouterr().err
    args = parse_args(build_parser(), ["--data-option", "file=a", "--data-option", "file=b"])
    with pytest.raises(CommitteeError, match="--data-option file=... is given twice"):
        data_options(args)
    config = tmp_path / "run.json"
    config.write_text(json.dumps({"data_option": [{"file": "a"}]}))
    with pytest.raises(CommitteeError, match="key 'data_option'.*item 0"):
        parse_args(build_parser(), ["--config", str(config)])


def test_listing_shows_each_datasets_options_with_kind_and_default(capsys):
    from committee_tasks.cli.eval import main

    assert main(["--task", "segmentation", "--list-datasets"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("cityscapes   Cityscapes as mmseg reads it")
    assert "    --data-option ignore_index=INT (default 255): label id of pixels left out of the metric (void)" in lines
    assert any(line.startswith("    --data-option reduce_zero_label=BOOL (default false)") for line in lines)


# ---- classification: folder and csv --------------------------------------------------------
def class_folders(root: Path, names=("dog", "cat", "bird"), per_class: int = 2) -> Path:
    for c, name in enumerate(names):
        for i in range(per_class):
            write_image(root / name / f"{i}.png", seed=10 * c + i)
    return root


def test_image_folder_indexes_classes_by_sorted_names_or_the_classes_option(tmp_path):
    task = get_task("classification")
    class_folders(tmp_path / "val")
    (tmp_path / "val" / "notes.txt").write_text("not an image")
    ds = task.build_dataset("folder", tmp_path, split="val", classes=None)
    assert ds.ids[:3] == ["val/bird/0.png", "val/bird/1.png", "val/cat/0.png"]
    assert ds.labels == [0, 0, 1, 1, 2, 2] and ds.num_classes == 3
    assert "ImageNet" not in ds.describe() and "3 classes" in ds.describe()
    sample = ds[0]
    assert sample.data.mode == "RGB" and sample.data.size == (12, 10) and sample.target == 0
    # names in the members' order, some classes without a folder
    ds = task.build_dataset("folder", tmp_path, split="val", classes=("cat", "horse", "dog", "bird"))
    assert ds.labels == [3, 3, 0, 0, 2, 2] and ds.num_classes == 4
    with pytest.raises(CommitteeError, match=r"class folders \['bird'\] of .* are not among the 2 names"):
        task.build_dataset("folder", tmp_path, split="val", classes=("cat", "dog"))
    with pytest.raises(CommitteeError, match="has no class subfolders"):
        task.build_dataset("folder", tmp_path / "val" / "cat", classes=None)


def test_csv_labels_by_name_or_index_with_or_without_a_header(tmp_path):
    task = get_task("classification")
    class_folders(tmp_path / "img", per_class=1)
    listing = tmp_path / "list.csv"
    listing.write_text("path,label\nimg/dog/0.png,dog\nimg/cat/0.png,cat\n\nimg/bird/0.png,bird\n")
    ds = task.build_dataset("csv", tmp_path, file=listing, classes=None)
    assert ds.ids == ["img/dog/0.png", "img/cat/0.png", "img/bird/0.png"]
    assert ds.labels == [2, 1, 0] and ds.num_classes == 3 and ds.describe() == f"images listed in {listing}"
    ds = task.build_dataset("csv", tmp_path, file=Path("list.csv"), classes=("dog", "cat", "bird", "fish"))
    assert ds.labels == [0, 1, 2] and ds.num_classes == 4  # the file found under --data-root
    listing.write_text("img/dog/0.png,4\nimg/cat/0.png,0\n")  # no header, class indices
    ds = task.build_dataset("csv", tmp_path, file=listing, classes=None)
    assert ds.labels == [4, 0] and ds.num_classes is None
    with pytest.raises(CommitteeError, match=r"img/dog/0.png has class index 4 but the members predict 3"):
        ds.check_classes(3)
    ds.check_classes(5)


@pytest.mark.parametrize("rows, classes, message", [
    ("img/dog/0.png,dog\nimg/cat/0.png,wolf\n", ("dog", "cat"),
     r"list.csv:2: label 'wolf' is not one of the 2 classes \('dog', 'cat'\)"),
    ("img/dog/0.png,dog\nimg/cat/0.png,3\n", None, "list.csv:2: label '3' is a class index but 1 of the 2 rows name"),
    ("img/dog/0.png,0\nimg/cat/0.png,1\nimg/cat/1.png,cat\n", None,
     "list.csv:3: label 'cat' is not a class index but 2 of the 3 rows give class indices"),
    ("img/dog/0.png,1\nimg/cat/0.png,2\n", ("dog", "cat"), r"list.csv:2: class index 2 is outside 0..1"),
    ("img/dog/0.png,dog\nimg/cow/0.png,cat\n", None, "list.csv:2: 'img/cow/0.png' is not a file under --data-root"),
    ("img/dog/0.png,dog,extra\n", None, "list.csv:1: expected 'path,label'"),
    ("path,label\n", None, "lists no images"),
])
def test_csv_errors_name_the_file_and_line(tmp_path, rows, classes, message):
    class_folders(tmp_path / "img", per_class=1)
    (tmp_path / "list.csv").write_text(rows)
    with pytest.raises(CommitteeError, match=message):
        get_task("classification").build_dataset("csv", tmp_path, file=tmp_path / "list.csv", classes=classes)


def test_csv_needs_its_file(tmp_path):
    with pytest.raises(CommitteeError, match="dataset 'csv' needs --data-option file=LIST.csv"):
        build_dataset(get_task("classification"), DataOptions("csv", tmp_path))


class TinyImageNet(torch.nn.Module):
    def __init__(self, classes: int):
        super().__init__()
        self.linear = torch.nn.Linear(3 * 8 * 8, classes)

    def forward(self, x):
        return self.linear(x.flatten(1))


def tiny_member(classes: int) -> Member:
    from torchvision import transforms

    torch.manual_seed(0)
    preprocess = transforms.Compose([transforms.Resize((8, 8)), transforms.ToTensor()])
    return Member.from_module(TinyImageNet(classes), preprocess, name=f"tiny{classes}")


def test_folder_through_the_loop_skips_a_bad_image_and_checks_the_members_classes(tmp_path):
    root = class_folders(tmp_path / "data")
    (root / "cat" / "broken.png").write_bytes(b"\x89PNG not really")
    ds = build_dataset(get_task("classification"), DataOptions("folder", root))
    pool = Pool.evaluate([tiny_member(3)], ds, "classification")
    assert len(pool.predictions.ids) == 6 and list(pool.predictions.skipped) == ["cat/broken.png"]
    assert "UnidentifiedImageError" in pool.predictions.skipped["cat/broken.png"]
    with pytest.raises(CommitteeError, match=r"images of 3 classes in .* has 3 classes but the members predict 10"):
        Pool.evaluate([tiny_member(10)], ds, "classification")


def test_a_calibration_dataset_takes_its_own_options(tmp_path):
    task = get_task("classification")
    class_folders(tmp_path / "val")
    class_folders(tmp_path / "calib", names=("dog", "cat"))
    data = DataOptions("folder", tmp_path, "val")
    calib = calibration_dataset(task, data, CalibrationOptions(dataset="folder", split="calib",
                                                               options={"classes": "bird,cat,dog"}))
    assert calib.labels == [1, 1, 2, 2] and calib.num_classes == 3  # cat/ then dog/
    with pytest.raises(CommitteeError, match="calibration dataset 'folder'.*--calibration-data-option.*not among"):
        calibration_dataset(task, data, CalibrationOptions(dataset="folder", split="val", options={"classes": "a,b"}))
    with pytest.raises(CommitteeError, match="unknown --calibration-data-option key 'clases'; did you mean 'classes'"):
        calibration_dataset(task, data, CalibrationOptions(dataset="folder", options={"clases": "a,b"}))


# ---- segmentation: folder ---------------------------------------------------------------------
def segmentation_folder(task, root: Path, split=None, **options):
    return task.build_dataset("folder", root, split=split, **task.read_dataset_options("folder", options))


@needs_camvid
def test_camvid_test_split_counts_and_void_pixels_are_ignored():
    from committee_tasks_builtin.segmentation import SegmentationTask

    task = SegmentationTask()
    ds = segmentation_folder(task, CAMVID, images="test", labels="testannot", classes=",".join(CAMVID_CLASSES),
                             ignore_index="11")
    assert len(ds) == 233 and ds.num_classes == 11 and len(set(ds.ids)) == 233
    for index in (0, 117):
        sample = ds[index]
        name = Path(sample.id).name
        raw = np.asarray(Image.open(CAMVID / "testannot" / name))
        rgb = np.asarray(Image.open(CAMVID / "test" / name).convert("RGB"))
        assert sample.data.dtype == torch.uint8 and tuple(sample.data.shape) == (3, 360, 480)
        np.testing.assert_array_equal(sample.data.numpy(), rgb[..., ::-1].transpose(2, 0, 1))  # BGR, as mmseg
        target = sample.target.numpy()
        assert target.dtype == np.int64 and set(np.unique(raw)) <= set(range(12))
        np.testing.assert_array_equal(np.bincount(target[target != 255], minlength=11), np.bincount(raw[raw != 11],
                                                                                                     minlength=11))
        assert (raw == 11).sum() > 0 and np.array_equal(target == 255, raw == 11)
        # right wherever the label is a class, class 0 on the void pixels: those must not count
        predicted = np.where(target == 255, 0, target)
        combined = np.eye(11, dtype=np.float32)[predicted].transpose(2, 0, 1)[None]
        stats = task.sample_statistics(combined, target[None])[0]
        inter, union, area_pred, area_label = stats.reshape(4, 11)
        np.testing.assert_array_equal(area_label, np.bincount(raw[raw != 11], minlength=11))
        np.testing.assert_array_equal(area_pred, area_label)  # void pixels predicted as Sky are left out
        np.testing.assert_array_equal(inter, union)
        assert task.metric(stats) == 100.0


def write_map(path: Path, ids: np.ndarray, mode: str | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(ids.astype(np.uint8), mode).save(path)
    return path


@pytest.fixture
def seg_task():
    from committee_tasks_builtin.segmentation import SegmentationTask

    return SegmentationTask()


def test_reduce_zero_label_and_ignore_index(tmp_path, seg_task, caplog):
    write_image(tmp_path / "images" / "a.jpg", 0, size=(4, 2))
    write_map(tmp_path / "labels" / "a.png", np.array([[0, 1, 2, 3], [255, 3, 2, 1]]))
    ds = segmentation_folder(seg_task, tmp_path, num_classes="3", reduce_zero_label="true")
    np.testing.assert_array_equal(ds[0].target.numpy(), [[255, 0, 1, 2], [255, 2, 1, 0]])
    assert "ignore_index" not in caplog.text
    ds = segmentation_folder(seg_task, tmp_path, classes="a,b,c", ignore_index="0")
    # the ignore index is class a's stored id: its IoU would be 0 wherever it is predicted
    assert "ignore_index 0 is the stored id of class 0 'a'" in caplog.text and "about 1/3" in caplog.text
    from committee_tasks_builtin.segmentation.datasets import LabelMapError

    with pytest.raises(LabelMapError, match=r"ids \[3, 255\] that are neither a class \(0..2\) nor the ignore index 0"):
        ds[0]
    write_map(tmp_path / "labels" / "a.png", np.array([[0, 1, 2, 3], [0, 3, 2, 1]]))
    ds = segmentation_folder(seg_task, tmp_path, num_classes="4", ignore_index="0")
    np.testing.assert_array_equal(ds[0].target.numpy(), [[255, 1, 2, 3], [255, 3, 2, 1]])


def test_rgb_label_maps_through_a_palette(tmp_path, seg_task):
    palette = [[0, 0, 0], [128, 0, 0], [0, 128, 0]]
    colours = np.array(palette, dtype=np.uint8)[np.array([[0, 1], [2, 1]])]
    write_image(tmp_path / "images" / "x" / "a.png", 1, size=(2, 2))
    Image.fromarray(colours, "RGB").save(write_map(tmp_path / "labels" / "x" / "a_L.png", np.zeros((2, 2))))
    (tmp_path / "palette.json").write_text(json.dumps({"255": [0, 0, 0], "0": [128, 0, 0], "1": [0, 128, 0]}))
    ds = segmentation_folder(seg_task, tmp_path, label_name="{stem}_L.png", num_classes="2",
                             palette=str(tmp_path / "palette.json"))
    assert ds.ids == ["images/x/a.png"]
    np.testing.assert_array_equal(ds[0].target.numpy(), [[255, 0], [1, 0]])
    ds = segmentation_folder(seg_task, tmp_path, label_name="{stem}_L.png", num_classes="3",
                             palette=json.dumps(palette))
    np.testing.assert_array_equal(ds[0].target.numpy(), [[0, 1], [2, 1]])
    from committee_tasks_builtin.segmentation.datasets import LabelMapError

    ds = segmentation_folder(seg_task, tmp_path, label_name="{stem}_L.png", num_classes="2",
                             palette=json.dumps(palette[:2]))
    with pytest.raises(LabelMapError, match=r"colours \[\(0, 128, 0\)\] that are not in the palette"):
        ds[0]
    with pytest.raises(CommitteeError, match="holds RGB colours: give the palette option"):
        segmentation_folder(seg_task, tmp_path, label_name="{stem}_L.png", num_classes="3")
    with pytest.raises(CommitteeError, match=r"palette entry 1: \[0, 300, 0\] is refused"):
        segmentation_folder(seg_task, tmp_path, num_classes="3", label_name="{stem}_L.png",
                            palette="[[0, 0, 0], [0, 300, 0]]")


class TinySegmenter(torch.nn.Module):
    def __init__(self, classes: int):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, classes, 1)

    def forward(self, x):
        return torch.softmax(self.conv(x), dim=1)


class BGRToFloat:
    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        return image.float() / 255

    def __repr__(self) -> str:
        return "BGRToFloat()"


def test_bad_label_maps_are_skipped_counted_and_listed_through_the_loop(tmp_path, seg_task):
    ids = np.array([[0, 1, 2, 1], [2, 1, 0, 255]])
    for stem in ("good", "small", "unknown", "missing"):
        write_image(tmp_path / "val" / "img" / f"{stem}.png", 3, size=(4, 2))
    write_map(tmp_path / "val" / "ann" / "good.png", ids)
    write_map(tmp_path / "val" / "ann" / "small.png", ids[:, :3])
    write_map(tmp_path / "val" / "ann" / "unknown.png", np.where(ids == 2, 7, ids))
    ds = segmentation_folder(seg_task, tmp_path, "val", images="{split}/img", labels="{split}/ann", classes="a,b,c")
    torch.manual_seed(0)
    member = Member.from_module(TinySegmenter(3), BGRToFloat(), name="tiny", task=seg_task)
    pool = Pool.evaluate([member], ds, seg_task)
    assert list(pool.predictions.ids) == ["val/img/good.png"]
    skipped = pool.predictions.skipped
    assert "label map 3x2 does not match the image 4x2" in skipped["val/img/small.png"]
    assert "LabelMapError: label map holds ids [7]" in skipped["val/img/unknown.png"]
    assert "label map" in skipped["val/img/missing.png"] and "is missing" in skipped["val/img/missing.png"]
    with pytest.raises(CommitteeError, match="has 3 classes but the members predict 4"):
        Pool.evaluate([Member.from_module(TinySegmenter(4), BGRToFloat(), name="four", task=seg_task)], ds, seg_task)


def test_fingerprint_follows_files_and_options(tmp_path, seg_task):
    write_image(tmp_path / "images" / "a.png", 0, size=(4, 2))
    write_map(tmp_path / "labels" / "a.png", np.zeros((2, 4)))
    first = segmentation_folder(seg_task, tmp_path, num_classes="3").fingerprint()
    assert segmentation_folder(seg_task, tmp_path, num_classes="3").fingerprint() == first
    assert segmentation_folder(seg_task, tmp_path, num_classes="3", ignore_index="0").fingerprint() != first
    assert segmentation_folder(seg_task, tmp_path, classes="x,y,z").fingerprint() != first
    write_map(tmp_path / "labels" / "a.png", np.arange(8).reshape(2, 4) % 3)  # another file size
    assert segmentation_folder(seg_task, tmp_path, num_classes="3").fingerprint() != first


@pytest.mark.parametrize("options, split, message", [
    ({}, None, "dataset 'folder' needs its classes"),
    ({"classes": "a,b", "num_classes": "3"}, None, "names 2 classes but num_classes is 3"),
    ({"num_classes": "2", "images": "pics"}, None, "no image folder .*pics"),
    ({"num_classes": "2"}, "val", "--split val has no place in the images folder 'images'"),
    ({"num_classes": "2", "label_name": "{stem}_x.png"}, None, "no label map found for any image"),
    ({"num_classes": "2", "label_name": "{base}.png"}, None, r"label_name '\{base\}.png': only \{stem\} and \{name\}"),
])
def test_segmentation_folder_errors(tmp_path, seg_task, options, split, message):
    write_image(tmp_path / "images" / "a.png", 0, size=(4, 2))
    write_map(tmp_path / "labels" / "a.png", np.zeros((2, 4)))
    with pytest.raises(CommitteeError, match=message):
        segmentation_folder(seg_task, tmp_path, split, **options)


# ---- video: videos ---------------------------------------------------------------------------
def test_videos_from_a_list_file_with_a_class_list(tmp_path):
    task = get_task("video")
    (tmp_path / "clips").mkdir()
    (tmp_path / "mine.txt").write_text("clips/a.mp4 waving\nclips/b.mp4 clapping\nclips/c.mp4 2\n")
    (tmp_path / "names.txt").write_text("clapping\nwaving\njumping\n")
    options = task.read_dataset_options("videos", {"label_file": str(tmp_path / "mine.txt"),
                                                   "class_list": str(tmp_path / "names.txt")})
    ds = task.build_dataset("videos", tmp_path, split=None, **options)
    assert [r.label for r in ds.rows] == [1, 0, 2] and ds.ids == ["clips/a.mp4", "clips/b.mp4", "clips/c.mp4"]
    # titles (tables, plots) show the folder's last parts, not the whole path
    assert ds.num_classes == 3 and ds.describe() == f"videos in .../{tmp_path.parent.name}/{tmp_path.name} (val split)"
    assert "Kinetics" not in ds.describe()
    kinetics = task.build_dataset("kinetics400", tmp_path, split=None, **options)
    assert kinetics.describe() == "Kinetics-400 val split"


def test_a_relative_option_file_is_found_in_the_data_root(tmp_path, monkeypatch):
    """`--data-root hmdb51 --data-option classes=classes.txt` (a file of the data's folder, as the
    README's video command names its list file) looked only in the working directory."""
    from committee_tasks.api.evaluation import build_dataset
    from committee_tasks.api.options import DataOptions

    class_folders(tmp_path / "data" / "val")
    (tmp_path / "data" / "classes.txt").write_text("cat\ndog\nbird\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    task = get_task("classification")
    ds = build_dataset(task, DataOptions("folder", tmp_path / "data", "val", {"classes": "classes.txt"}))
    assert ds.num_classes == 3 and ds.labels[:2] == [2, 2]  # bird is index 2 of the file's order
    (elsewhere / "classes.txt").write_text("bird\ncat\ndog\n")  # the working directory's comes first
    ds = build_dataset(task, DataOptions("folder", tmp_path / "data", "val", {"classes": "classes.txt"}))
    assert ds.labels[:2] == [0, 0]
