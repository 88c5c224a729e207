"""ImageNet as users have it on disk (tiny fake copies written as real JPEGs), its clear errors, and
tools/eval.py end to end on it with two torchvision members (random-init weights saved under the
file names the zoo expects: there is no network here)."""
from __future__ import annotations

import csv
import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from committee_tasks.cli.eval import main
from committee_tasks.core.errors import CommitteeError
from committee_tasks.core.zoo import sha256_of
from committee_tasks_builtin.classification.datasets import load_imagenet
from committee_tasks_builtin.classification.zoo import classification_zoo
from tests.conftest import was_measured

WNIDS = ["n00000001", "n00000002", "n00000003"]
PER_CLASS = 2


def write_jpeg(path: Path, seed: int, size=(40, 30), mode: str = "RGB") -> Path:
    rng = np.random.default_rng(seed)
    shape = (size[1], size[0], 3) if mode == "RGB" else (size[1], size[0])
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode).save(path, "JPEG")
    return path


def class_folders(folder: Path, wnids=WNIDS, per_class: int = PER_CLASS) -> list[str]:
    """<folder>/<wnid>/<wnid>_<k>.JPEG; the first image is grayscale (the dataset gives RGB)."""
    names = []
    for c, wnid in enumerate(wnids):
        for k in range(per_class):
            mode = "L" if c == 0 and k == 0 else "RGB"
            names.append(str(write_jpeg(folder / wnid / f"{wnid}_{k}.JPEG", 10 * c + k, mode=mode)))
    return names


def flat_folder(folder: Path, n: int = 6) -> list[str]:
    return [write_jpeg(folder / f"ILSVRC2012_val_{i:08d}.JPEG", i).name for i in range(1, n + 1)]


def check_decodes(dataset):
    sample = dataset[0]
    assert sample.id == dataset.ids[0]
    assert isinstance(sample.data, Image.Image) and sample.data.mode == "RGB" and sample.data.size == (40, 30)
    assert sample.target == dataset.labels[0]


# ---- the four layouts ---------------------------------------------------------------------
def test_val_class_folders(tmp_path):
    class_folders(tmp_path / "val")
    (tmp_path / "val" / WNIDS[0] / "notes.txt").write_text("not an image")
    ds = load_imagenet(tmp_path, num_classes=3)
    assert ds.name == "imagenet-val"
    assert ds.ids == [f"val/{w}/{w}_{k}.JPEG" for w in WNIDS for k in range(PER_CLASS)]
    assert ds.labels == [0, 0, 1, 1, 2, 2]
    assert len(ds) == 6
    check_decodes(ds)  # ds[0] is the grayscale file: decoded as RGB
    assert all(ds[i].data.mode == "RGB" for i in range(len(ds)))


def test_class_folders_at_root(tmp_path):
    class_folders(tmp_path)
    ds = load_imagenet(tmp_path, num_classes=3)
    assert ds.ids == [f"{w}/{w}_{k}.JPEG" for w in WNIDS for k in range(PER_CLASS)]
    assert ds.labels == [0, 0, 1, 1, 2, 2]
    check_decodes(ds)


def test_class_list_gives_indices_of_a_subset(tmp_path):
    class_folders(tmp_path / "val", wnids=["n00000007", "n00000003"])
    class_list = tmp_path / "classes.txt"
    class_list.write_text("".join(f"n{i:08d} some name\n" for i in range(10)))
    ds = load_imagenet(tmp_path, class_list=class_list, num_classes=10)
    assert ds.ids[0] == "val/n00000003/n00000003_0.JPEG"
    assert ds.labels == [3, 3, 7, 7]
    check_decodes(ds)


def test_flat_folder_with_val_txt(tmp_path):
    files = flat_folder(tmp_path / "val")
    labels = [2, 0, 1, 1, 0, 2]
    # a listed name without its extension is found too
    lines = [f"{Path(f).stem if i == 3 else f} {y}" for i, (f, y) in enumerate(zip(files, labels))]
    (tmp_path / "val.txt").write_text("\n".join(reversed(lines)) + "\n\n")
    ds = load_imagenet(tmp_path, num_classes=3)
    assert ds.ids == [f"val/{f}" for f in files]
    assert ds.labels == labels
    check_decodes(ds)


def test_flat_folder_with_kaggle_csv(tmp_path):
    files = flat_folder(tmp_path / "val")
    wnids = ["n00000003", "n00000001", "n00000002", "n00000002", "n00000001", "n00000003"]
    with open(tmp_path / "LOC_val_solution.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["ImageId", "PredictionString"])
        for name, wnid in zip(files, wnids):
            writer.writerow([Path(name).stem, f"{wnid} 1 2 30 20 {wnid} 3 4 10 10 "])
    ds = load_imagenet(tmp_path, num_classes=3)
    assert ds.ids == [f"val/{f}" for f in files]
    assert ds.labels == [WNIDS.index(w) for w in wnids] == [2, 0, 1, 1, 0, 2]
    check_decodes(ds)
    # with a class list the indices are the list's
    class_list = tmp_path / "classes.txt"
    class_list.write_text("\n".join(f"n{i:08d}" for i in range(1000)))
    ds = load_imagenet(tmp_path, class_list=class_list)
    assert ds.labels == [3, 1, 2, 2, 1, 3]
    # a subset of classes without a class list would silently shift the indices: refused
    with pytest.raises(CommitteeError, match="names 3 classes but the models predict 1000.*--data-option class_list="):
        load_imagenet(tmp_path, num_classes=1000)
    with pytest.raises(CommitteeError, match="has 3 classes but the members predict 1000.*--data-option class_list="):
        load_imagenet(tmp_path).check_classes(1000)  # what the loop does with the members' count
    class_list.write_text("n00000001\nn00000002\n")
    with pytest.raises(CommitteeError, match=r"wnids \['n00000003'\] are not in the class list"):
        load_imagenet(tmp_path, class_list=class_list, num_classes=2)


def test_fingerprint_follows_content(tmp_path):
    class_folders(tmp_path / "val")
    first = load_imagenet(tmp_path, num_classes=3).fingerprint()
    assert load_imagenet(tmp_path, num_classes=3).fingerprint() == first
    write_jpeg(tmp_path / "val" / WNIDS[1] / "extra.JPEG", 99)
    assert load_imagenet(tmp_path, num_classes=3).fingerprint() != first


# ---- clear errors --------------------------------------------------------------------------
def test_wrong_number_of_class_folders_needs_class_list(tmp_path):
    class_folders(tmp_path / "val")
    ds = load_imagenet(tmp_path)  # 3 classes: its class folders (no assumed 1,000)
    assert ds.num_classes == 3
    ds.check_classes(3)
    with pytest.raises(CommitteeError) as info:
        ds.check_classes(1000)  # the models predict 1000 classes
    message = str(info.value)
    assert "has 3 classes but the members predict 1000" in message
    assert "--data-option class_list=FILE" in message
    with pytest.raises(CommitteeError, match="has 3 class folders but the models predict 1000 classes"):
        load_imagenet(tmp_path, num_classes=1000)  # a caller who knows the members' count: refused at once


def test_class_folder_missing_from_class_list(tmp_path):
    class_folders(tmp_path / "val")
    class_list = tmp_path / "classes.txt"
    class_list.write_text("n00000001\nn00000002\n")
    with pytest.raises(CommitteeError, match=r"class folders \['n00000003'\] are not in the class list"):
        load_imagenet(tmp_path, class_list=class_list, num_classes=2)


def test_class_list_must_name_every_class(tmp_path):
    class_folders(tmp_path / "val")
    class_list = tmp_path / "classes.txt"
    class_list.write_text("n00000001\nn00000002\nn00000003\nn00000004\n")
    with pytest.raises(CommitteeError, match=r"has 4 wnids but the models predict 1000 classes"):
        load_imagenet(tmp_path, class_list=class_list, num_classes=1000)
    with pytest.raises(CommitteeError, match=r"has 4 classes but the members predict 1000"):
        load_imagenet(tmp_path, class_list=class_list).check_classes(1000)


def test_kaggle_csv_without_its_columns(tmp_path):
    flat_folder(tmp_path / "val", n=2)
    (tmp_path / "LOC_val_solution.csv").write_text("image,label\nx,n00000001\n")
    with pytest.raises(CommitteeError, match=r"expected Kaggle's columns ImageId,PredictionString"):
        load_imagenet(tmp_path)


def test_label_outside_range(tmp_path):
    files = flat_folder(tmp_path / "val", n=2)
    (tmp_path / "val.txt").write_text(f"{files[0]} 0\n{files[1]} 3\n")
    with pytest.raises(CommitteeError, match=f"label 3 of {files[1]} is outside 0..2"):
        load_imagenet(tmp_path, num_classes=3)


def test_val_txt_lists_a_missing_file(tmp_path):
    files = flat_folder(tmp_path / "val", n=2)
    (tmp_path / "val.txt").write_text(f"{files[0]} 0\nILSVRC2012_val_00000099.JPEG 1\n")
    with pytest.raises(CommitteeError, match="lists 'ILSVRC2012_val_00000099.JPEG' but .* has no such image"):
        load_imagenet(tmp_path, num_classes=3)


def test_val_txt_bad_line_and_no_labels(tmp_path):
    files = flat_folder(tmp_path / "val", n=2)
    with pytest.raises(CommitteeError, match="no class folders and no label file"):
        load_imagenet(tmp_path, num_classes=3)
    (tmp_path / "val.txt").write_text(f"{files[0]} 0\n{files[1]} cat\n")
    with pytest.raises(CommitteeError, match=r"val.txt:2: expected '<file> <class index>'"):
        load_imagenet(tmp_path, num_classes=3)
    with pytest.raises(CommitteeError, match="is not a folder"):
        load_imagenet(tmp_path / "nowhere")


# ---- end to end through tools/eval.py ----------------------------------------------------------
MEMBERS = ("mobilenet_v3_small", "resnet18")
CLASS_LIST_WNIDS = [f"n{i:08d}" for i in range(1000)]  # WNIDS are classes 1, 2, 3 of these


@pytest.fixture(scope="module")
def weights_dir(tmp_path_factory):
    """Random-init state dicts of the members, under the file names the zoo entries expect."""
    folder = tmp_path_factory.mktemp("weights")
    zoo = classification_zoo()
    torch.manual_seed(0)
    for name in MEMBERS:
        torch.save(zoo[name].builder().state_dict(), folder / zoo[name].weights.file_name)
    return folder


@pytest.fixture
def unhashed_zoo(monkeypatch):
    """The members' entries without their expected sha256 (the saved files are not the published
    ones); everything else about the entries is unchanged."""
    zoo = classification_zoo()
    for name in MEMBERS:
        entry = zoo[name]
        monkeypatch.setitem(zoo, name, dataclasses.replace(entry, weights=dataclasses.replace(entry.weights, sha256=None)))
    return zoo


def run_eval(root: Path, out: Path, weights_dir: Path, cache_dir: Path) -> int:
    class_list = out / "classes.txt"
    class_list.write_text("\n".join(CLASS_LIST_WNIDS) + "\n")
    return main(["--task", "classification", "--dataset", "imagenet", "--data-root", str(root),
                 "--data-option", f"class_list={class_list}", "--weights-dir", str(weights_dir),
                 "--cascade", ",".join(MEMBERS), "--thresholds", "0.5", "--ensemble", ",".join(MEMBERS),
                 "--cache-dir", str(cache_dir), "--workers", "0", "--batch-size", "4", "--measure-samples", "4",
                 "--no-progress", "--json", str(out / "out.json"), "--csv", str(out / "out.csv")])


def test_eval_end_to_end(tmp_path, weights_dir, unhashed_zoo, capsys):
    root, out = tmp_path / "imagenet", tmp_path / "out"
    out.mkdir()
    class_folders(root / "val")
    assert run_eval(root, out, weights_dir, tmp_path / "cache") == 0
    printed = capsys.readouterr().out
    report = json.loads((out / "out.json").read_text())
    assert report["task"] == "classification" and report["dataset"] == "imagenet-val"
    assert report["samples"] == len(WNIDS) * PER_CLASS and report["skipped"] == {}
    rows = {r["name"]: r for r in report["rows"]}
    assert [r["kind"] for r in report["rows"]] == ["member", "member", "ensemble", "cascade"]
    ensemble = rows["ensemble(mobilenet_v3_small+resnet18)"]
    cascade = next(r for r in report["rows"] if r["kind"] == "cascade")
    assert cascade["members"] == list(MEMBERS) and ensemble["members"] == list(MEMBERS)
    assert sum(cascade["exit_fractions"]) == pytest.approx(1) and len(cascade["exit_fractions"]) == 2
    # MACs counted at 224x224 are torchvision's published ones
    for name in MEMBERS:
        published = unhashed_zoo[name].macs
        assert rows[name]["published"]["macs"] == published
        assert rows[name]["macs_mean"] == pytest.approx(published, rel=0.02)
        assert rows[name]["macs_worst"] == rows[name]["macs_mean"]
        assert 0 <= rows[name]["metric"] <= 100
    total = sum(unhashed_zoo[n].macs for n in MEMBERS)
    assert ensemble["macs_mean"] == pytest.approx(total, rel=0.02)
    assert cascade["macs_worst"] == pytest.approx(total, rel=0.02)
    assert rows["mobilenet_v3_small"]["macs_mean"] <= cascade["macs_mean"] <= cascade["macs_worst"]
    assert cascade["reference"] == "resnet18"  # the member with most MACs
    assert all(was_measured(r) for r in report["rows"])
    assert "imagenet-val: 6 samples" in printed
    with open(out / "out.csv", newline="") as f:
        csv_rows = list(csv.DictReader(f))
    assert [r["name"] for r in csv_rows] == [r["name"] for r in report["rows"]]
    assert len(csv_rows) == 4
    assert float(csv_rows[0]["macs_mean"]) == pytest.approx(rows["mobilenet_v3_small"]["macs_mean"])
    # the members ran with the saved weight files (their sha256 keys the prediction cache)
    manifests = [json.loads(p.read_text()) for p in (tmp_path / "cache").glob("classification/*/*/manifest.json")]
    assert {m["member"]: m["weights_sha256"] for m in manifests} == {
        n: sha256_of(weights_dir / unhashed_zoo[n].weights.file_name) for n in MEMBERS}


def test_eval_skips_a_corrupt_image(tmp_path, weights_dir, unhashed_zoo, capsys):
    root, out = tmp_path / "imagenet", tmp_path / "out"
    out.mkdir()
    class_folders(root / "val")
    good = (root / "val" / WNIDS[1] / f"{WNIDS[1]}_0.JPEG").read_bytes()
    (root / "val" / WNIDS[1] / "truncated.JPEG").write_bytes(good[:100])
    assert run_eval(root, out, weights_dir, tmp_path / "cache") == 0
    report = json.loads((out / "out.json").read_text())
    bad_id = f"val/{WNIDS[1]}/truncated.JPEG"
    assert list(report["skipped"]) == [bad_id]
    assert report["skipped"][bad_id].startswith("OSError")  # PIL: "Truncated File Read"
    assert report["samples"] == len(WNIDS) * PER_CLASS  # 7 files, one unreadable
    assert len(report["rows"]) == 4
    printed = capsys.readouterr().out
    assert "(1 skipped: 1 OSError)" in printed and f"skipped {bad_id}" in printed
    # the skip is remembered: a second run (all cached) reports it again without re-reading
    assert run_eval(root, out, weights_dir, tmp_path / "cache") == 0
    again = json.loads((out / "out.json").read_text())
    assert again["skipped"] == report["skipped"] and again["samples"] == report["samples"]
