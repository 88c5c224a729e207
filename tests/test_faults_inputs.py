"""Fault injection on reading input data (issue 14): no code runs from a data file, inputs are read
as they are (16-bit images, duplicated or escaping label-file entries, the class count, wrong-size
samples), and an image folder's fingerprint covers the content of its files. Each test reproduces
a fault the audit found; tiny files are written into tmp_path."""
from __future__ import annotations

import os
import pickle
import struct
import types
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from committee_tasks import LoopOptions, Member, PredictionCache, evaluate_pool
from committee_tasks.core import file_hashes
from committee_tasks.core.errors import CommitteeError
from committee_tasks.core.image_preprocessing import ImagePreprocessing
from committee_tasks.core.safe_pickle import load_data_pickle
from committee_tasks.core.samples import contained_path
from committee_tasks.engine.inputs import PoolInputs, Skipped, collate, declared_input_shapes, make_loader
from committee_tasks_builtin.classification.datasets import ImageFileDataset, load_cifar10, load_imagenet, to_rgb
from committee_tasks_builtin.classification.generic_datasets import load_image_csv, load_image_folder
from committee_tasks_builtin.classification.zoo import cifar_transform, classification_zoo


# ---- 1. no code runs from a data file ------------------------------------------------------------
def cifar_arrays(n: int = 6, seed: int = 0) -> tuple[np.ndarray, list[int]]:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, 3072), dtype=np.uint8), [int(y) for y in rng.integers(0, 10, n)]


class Payload:
    """Pickles as a call of ``function(argument)``: what a crafted data file would run."""

    def __init__(self, function, argument):
        self.function, self.argument = function, argument

    def __reduce__(self):
        return self.function, (self.argument,)


def payloads(marker: Path) -> dict[str, Payload]:
    return {"os.system": Payload(os.system, f"touch {marker}"),
            "builtins.eval": Payload(eval, f"open({str(marker)!r}, 'w').close()"),
            "builtins.exec": Payload(exec, f"open({str(marker)!r}, 'w').close()")}


class Py2Pickler(pickle._Pickler):
    """Writes bytes as Python 2's str (BINSTRING) and numpy's arrays under numpy 1's module name:
    the cifar-10-batches-py files as the CIFAR authors pickled them with Python 2."""

    dispatch = pickle._Pickler.dispatch.copy()

    def save_bytes(self, obj):
        n = len(obj)
        header = pickle.SHORT_BINSTRING + bytes([n]) if n < 256 else pickle.BINSTRING + struct.pack("<i", n)
        self.write(header + obj)
        self.memoize(obj)

    dispatch[bytes] = save_bytes


def py2_pickle(obj) -> bytes:
    import io

    out = io.BytesIO()
    Py2Pickler(out, protocol=2).dump(obj)
    return out.getvalue().replace(b"cnumpy._core.multiarray\n", b"cnumpy.core.multiarray\n")


@pytest.mark.parametrize("name", ["os.system", "builtins.eval", "builtins.exec"])
@pytest.mark.parametrize("with_data", [False, True])
def test_a_crafted_cifar_batch_runs_nothing(tmp_path, name, with_data):
    marker = tmp_path / "ran"
    data, labels = cifar_arrays()
    payload = payloads(marker)[name]
    obj = {"data": data, "labels": labels, "batch_label": payload} if with_data else payload
    batch = tmp_path / "cifar-10-batches-py" / "test_batch"
    batch.parent.mkdir()
    batch.write_bytes(pickle.dumps(obj, protocol=2))
    for root in (tmp_path, batch):  # found in the folder, or given as --data-root itself
        with pytest.raises(CommitteeError) as info:
            load_cifar10(root)
        message = str(info.value)
        assert not marker.exists()
        assert str(batch) in message and "refused" in message and "cifar10-test.npz" in message
        assert f".{name.split('.')[1]}" in message  # the global it names: posix.system, __builtin__.eval, ...


def test_only_latin1_codec_and_numpy_globals_are_admitted(tmp_path):
    path = tmp_path / "batch"
    # _codecs.encode is admitted for latin1 (Python 3 bytes) only: another codec is refused
    path.write_bytes(b"\x80\x02c_codecs\nencode\nX\x01\x00\x00\x00aX\x06\x00\x00\x00base64\x86R.")
    with pytest.raises(CommitteeError, match="not a readable data pickle"):
        load_data_pickle(path)
    for module, name in (("numpy", "load"), ("numpy.lib.npyio", "load"), ("subprocess", "Popen"), ("torch", "load")):
        path.write_bytes(b"\x80\x02c" + f"{module}\n{name}\n".encode() + b".")
        with pytest.raises(CommitteeError, match=f"loads the Python global {module}.{name}"):
            load_data_pickle(path)


def reference_npz(tmp_path: Path, data: np.ndarray, labels: list[int]) -> Path:
    folder = tmp_path / "npz"
    folder.mkdir()
    np.savez(folder / "cifar10-test.npz", images=data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1),
             labels=np.asarray(labels))
    return folder


@pytest.mark.parametrize("style", ["python2", "protocol2", "protocol4", "protocol5", "bytes-keys"])
def test_a_genuine_cifar_batch_loads_like_the_npz(tmp_path, style):
    data, labels = cifar_arrays(n=7, seed=1)
    batch = {"batch_label": "testing batch 1 of 1", "labels": labels, "data": data,
             "filenames": [f"img_{i}.png" for i in range(len(labels))]}
    if style == "python2":
        raw = py2_pickle({k.encode(): v.encode() if isinstance(v, str) else
                          [f.encode() for f in v] if k == "filenames" else v for k, v in batch.items()})
        assert b"_codecs" not in raw and b"numpy.core.multiarray" in raw
    elif style == "bytes-keys":  # a Python 3 rewrite keeping Python 2's byte-string keys
        raw = pickle.dumps({k.encode(): v for k, v in batch.items()}, protocol=2)
    else:
        raw = pickle.dumps(batch, protocol=int(style[-1]))
    (tmp_path / "cifar-10-batches-py").mkdir()
    (tmp_path / "cifar-10-batches-py" / "test_batch").write_bytes(raw)
    got, want = load_cifar10(tmp_path), load_cifar10(reference_npz(tmp_path, data, labels))
    assert np.array_equal(got.images, want.images) and got.images.dtype == np.uint8
    assert np.array_equal(got.labels, want.labels) and got.ids == want.ids
    assert np.array_equal(np.asarray(got.image(3)), want.images[3])


@pytest.mark.real_data
def test_the_real_test_set_as_a_python_2_batch_loads_like_the_npz(shared_data, tmp_path):
    real = load_cifar10(shared_data)
    images, labels = real.images[:2000], real.labels[:2000]  # a fifth: the same format, faster
    data = images.transpose(0, 3, 1, 2).reshape(len(images), 3072)
    (tmp_path / "cifar-10-batches-py").mkdir()
    (tmp_path / "cifar-10-batches-py" / "test_batch").write_bytes(
        py2_pickle({b"batch_label": b"testing batch 1 of 1", b"labels": [int(y) for y in labels], b"data": data}))
    got = load_cifar10(tmp_path)
    assert np.array_equal(got.images, images) and np.array_equal(got.labels, labels)


@pytest.mark.parametrize("batch, expected", [
    ([1, 2, 3], "not a CIFAR-10 batch"),
    ({"data": np.zeros((2, 3072), np.float32), "labels": [0, 1]}, "'data' must be a uint8 array"),
    ({"data": np.array([[b"x"] * 3072] * 2, dtype=object), "labels": [0, 1]}, "'data' must be a uint8 array"),
    ({"data": np.zeros((2, 3072), np.uint8), "labels": [0, 10]}, "'labels' must be 2 integers in 0..9"),
    ({"data": np.zeros((2, 3072), np.uint8), "labels": ["0", "1"]}, "'labels' must be 2 integers"),
    ({"data": np.zeros((2, 3072), np.uint8), "labels": [0]}, "'labels' must be 2 integers"),
])
def test_a_cifar_batch_of_another_structure_is_refused(tmp_path, batch, expected):
    path = tmp_path / "test_batch"
    path.write_bytes(pickle.dumps(batch, protocol=2))
    with pytest.raises(CommitteeError, match=expected):
        load_cifar10(path)


def test_truncated_pickle_and_bad_npz_name_the_file(tmp_path):
    path = tmp_path / "test_batch"
    data, labels = cifar_arrays()
    path.write_bytes(pickle.dumps({"data": data, "labels": labels}, protocol=2)[:500])
    with pytest.raises(CommitteeError, match=f"{path}: not a readable data pickle"):
        load_cifar10(path)
    npz = tmp_path / "cifar10-test.npz"
    np.savez(npz, images=np.zeros((2, 32, 32, 3), object), labels=np.zeros(2, int))
    with pytest.raises(CommitteeError, match=f"{npz}: not a readable cifar10-test.npz"):
        load_cifar10(npz)
    npz.write_bytes(b"garbage")
    with pytest.raises(CommitteeError, match=f"{npz}: not a readable cifar10-test.npz"):
        load_cifar10(npz)


def test_the_tool_exits_2_with_one_error_line(tmp_path, capsys):
    from committee_tasks.cli.eval import main

    marker = tmp_path / "ran"
    (tmp_path / "test_batch").write_bytes(pickle.dumps(payloads(marker)["os.system"], protocol=2))
    code = main(["--task", "classification", "--dataset", "cifar10", "--data-root", str(tmp_path / "test_batch"),
                 "--ensemble", "resnet20,resnet32", "--cache-dir", str(tmp_path / "cache"), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and not marker.exists()
    assert err.startswith("error: ") and err.count("\n") == 1 and "refused" in err and "Traceback" not in err


# ---- 2. images read as they are ------------------------------------------------------------------
def test_16_bit_png_is_scaled_not_saturated(tmp_path):
    values = np.array([[0, 257, 32768, 65535]], dtype=np.uint16).repeat(4, axis=0)
    Image.fromarray(values).save(tmp_path / "gray16.png")
    with Image.open(tmp_path / "gray16.png") as img:
        assert img.mode.startswith("I")  # PIL reads a 16-bit PNG as I;16 (or I)
    (tmp_path / "a").mkdir()
    os.replace(tmp_path / "gray16.png", tmp_path / "a" / "gray16.png")
    Image.fromarray(np.full((4, 4), 32768, np.uint16)).save(tmp_path / "a" / "mid.png")
    ds = load_image_folder(tmp_path)
    pixels = {ds.ids[i]: np.asarray(ds[i].data) for i in range(len(ds))}
    mid = pixels["a/mid.png"]
    assert mid.shape == (4, 4, 3) and np.all(mid == 128)  # 32768 * 255 / 65535 = 127.5 -> 128, not 255
    assert pixels["a/gray16.png"][0, :, 0].tolist() == [0, 1, 128, 255]
    big_endian = Image.frombytes("I;16B", (2, 1), np.array([32768, 65535], ">u2").tobytes())
    assert np.asarray(to_rgb(big_endian))[0, :, 1].tolist() == [128, 255]
    assert np.asarray(to_rgb(Image.fromarray(np.array([[0, 65535]], np.int32))))[0, :, 0].tolist() == [0, 255]


def test_float_images_are_refused_other_modes_convert_as_pil_does(tmp_path):
    with pytest.raises(ValueError, match="floating-point image"):
        to_rgb(Image.fromarray(np.full((4, 4), 0.5, np.float32)))
    with pytest.raises(ValueError, match="beyond the 16-bit range"):
        to_rgb(Image.fromarray(np.array([[0, 70000]], np.int32)))
    rgba = Image.fromarray(np.random.default_rng(0).integers(0, 256, (4, 4, 4), dtype=np.uint8), "RGBA")
    for img in (rgba, *(rgba.convert(mode) for mode in ("LA", "P", "L", "1", "CMYK"))):
        out = to_rgb(img)
        assert out.mode == "RGB" and np.array_equal(np.asarray(out), np.asarray(img.convert("RGB"))), img.mode
    assert np.array_equal(np.asarray(to_rgb(rgba)), np.asarray(rgba)[..., :3])  # alpha dropped, not composited
    # a float TIFF in a dataset is skipped with the reason, counted like a corrupt file
    (tmp_path / "a").mkdir()
    Image.fromarray(np.full((4, 4), 0.5, np.float32)).save(tmp_path / "a" / "f.tif")
    item = PoolInputs(load_image_folder(tmp_path), {"k": ImagePreprocessing()})[0]
    assert isinstance(item, Skipped) and "floating-point" in item.reason


# ---- 3. one file listed twice ----------------------------------------------------------------
def write_image(path: Path, seed: int = 0, size=(8, 8)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(path)
    return path


def test_val_txt_listing_a_file_twice_is_an_error(tmp_path):
    for i in range(3):
        write_image(tmp_path / "val" / f"img{i}.png", i)
    (tmp_path / "val.txt").write_text("img0.png 1\nimg1.png 0\nimg2.png 2\nimg0.png 2\n")
    with pytest.raises(CommitteeError, match=rf"{tmp_path / 'val.txt'} lists the image 'val/img0.png' more than "
                                             r"once \(lines 1, 4\)"):
        load_imagenet(tmp_path)
    (tmp_path / "val.txt").write_text("img0.png 1\nimg1.png 0\nimg0 1\n")  # the same file by its stem
    with pytest.raises(CommitteeError, match=r"'val/img0.png' more than once \(lines 1, 3\)"):
        load_imagenet(tmp_path)


def test_kaggle_csv_listing_an_image_twice_is_an_error(tmp_path):
    for i in range(2):
        write_image(tmp_path / "val" / f"img{i}.png", i)
    (tmp_path / "LOC_val_solution.csv").write_text(
        "ImageId,PredictionString\nimg0,n01 1 2 3 4\nimg1,n02 1 2 3 4\nimg0,n02 1 2 3 4\n")
    with pytest.raises(CommitteeError, match=r"LOC_val_solution.csv lists the image 'val/img0.png' more than once "
                                             r"\(lines 2, 4\)"):
        load_imagenet(tmp_path)


def test_generic_csv_listing_an_image_twice_is_an_error(tmp_path):
    write_image(tmp_path / "a.png")
    write_image(tmp_path / "b.png", 1)
    listing = tmp_path / "list.csv"
    listing.write_text("path,label\na.png,cat\nb.png,dog\n./a.png,dog\n")
    with pytest.raises(CommitteeError, match=r"list.csv lists the image 'a.png' more than once \(lines 2, 4\)"):
        load_image_csv(tmp_path, listing)


def test_class_list_naming_a_class_twice_is_an_error(tmp_path):
    write_image(tmp_path / "val" / "n01" / "x.png")
    (tmp_path / "classes.txt").write_text("n01\nn02\nn01\n")
    with pytest.raises(CommitteeError, match=r"classes.txt lists the class 'n01' more than once \(lines 1, 3\)"):
        load_imagenet(tmp_path, class_list=tmp_path / "classes.txt")


# ---- 4. the class count comes from the class list or the model, never an assumed 1,000 -----------
class TinyNet(torch.nn.Module):
    def __init__(self, classes: int = 10):
        super().__init__()
        torch.manual_seed(0)
        self.head = torch.nn.Linear(3, classes)

    def forward(self, x):
        return self.head(x.mean(dim=(2, 3)))


def tiny_member(classes: int = 10, entry=None, name: str = "tiny") -> Member:
    member = Member.from_module(TinyNet(classes), ImagePreprocessing(), name=name, num_classes=classes)
    member.entry = entry
    return member


def loop_options(batch_size: int = 4) -> LoopOptions:
    return LoopOptions(batch_size=batch_size, num_workers=0, device="cpu", progress=False)


def test_a_10_class_model_on_a_10_class_imagenet_folder(classification, tmp_path):
    wnids = [f"n{i:08d}" for i in range(10)]
    for c, w in enumerate(wnids):
        write_image(tmp_path / "val" / w / f"{w}_0.png", c)
    ds = classification.build_dataset("imagenet", tmp_path)  # as tools/eval.py builds it: no num_classes
    assert ds.num_classes == 10 and ds.labels == list(range(10))
    predictions, _ = evaluate_pool(classification, [tiny_member()], ds, PredictionCache(tmp_path / "cache"),
                                   options=loop_options())
    assert len(predictions.ids) == 10
    # a class list padded to 1,000 wnids for these 10-class members: refused, not scored as 0.00%
    (tmp_path / "classes.txt").write_text("\n".join(wnids + [f"x{i}" for i in range(990)]))
    padded = classification.build_dataset("imagenet", tmp_path, class_list=tmp_path / "classes.txt")
    with pytest.raises(CommitteeError, match="has 1000 classes but the members predict 10"):
        evaluate_pool(classification, [tiny_member()], padded, PredictionCache(tmp_path / "cache"),
                      options=loop_options())
    # val.txt of indices without a class list: the count is unknown, labels beyond the members' refused
    flat = tmp_path / "flat"
    for i in range(3):
        write_image(flat / f"img{i}.png", i)
    (flat / "val.txt").write_text("img0.png 0\nimg1.png 9\nimg2.png 12\n")
    ds = load_imagenet(flat)
    assert ds.num_classes is None
    with pytest.raises(CommitteeError, match="img2.png has class index 12 but the members predict 10"):
        ds.check_classes(10)


# ---- 5. every path from a label file stays in the data root -------------------------------------
def test_label_file_entries_outside_the_data_root_are_refused(tmp_path):
    root = tmp_path / "root"
    outside = write_image(tmp_path / "secret.png")
    write_image(root / "val" / "img0.png")
    for entry in ("../../secret.png", str(outside), "img0/../../../secret.png", "..\\..\\secret.png"):
        (root / "val.txt").write_text(f"img0.png 0\n{entry} 1\n")
        with pytest.raises(CommitteeError, match=r"val.txt:2: .* is outside the data root"):
            load_imagenet(root)
        listing = root / "list.csv"
        listing.write_text(f"val/img0.png,0\n{entry},1\n")
        with pytest.raises(CommitteeError, match=r"list.csv:2: .* is outside the data root"):
            load_image_csv(root, listing)


def test_video_list_entries_outside_the_data_root_are_refused(tmp_path):
    from committee_tasks_builtin.video.datasets import load_kinetics

    (tmp_path / "k" / "val").mkdir(parents=True)
    for entry in ("../../secret.mp4", "/etc/passwd", "a/../../b.mp4"):
        (tmp_path / "k" / "val.csv").write_text(f"a/ok.mp4 0\n{entry} 1\n")
        with pytest.raises(CommitteeError, match=r"val.csv:2: .* is outside the data root"):
            load_kinetics(tmp_path / "k", split="val", label_file=tmp_path / "k" / "val.csv")
    official = "label,youtube_id,time_start,time_end,split\nok,abc,0,10,val\n../../x,abc,0,10,val\n"
    (tmp_path / "k" / "val.csv").write_text(official)
    with pytest.raises(CommitteeError, match=r"val.csv:3: .* is outside the data root"):
        load_kinetics(tmp_path / "k", split="val", label_file=tmp_path / "k" / "val.csv")


def test_symlinks_inside_the_data_root_keep_working(tmp_path):
    root = tmp_path / "root"
    elsewhere = write_image(tmp_path / "store" / "real.png", 3)
    (root / "val").mkdir(parents=True)
    (root / "val" / "linked.png").symlink_to(elsewhere)
    (root / "val.txt").write_text("linked.png 1\n")
    ds = load_imagenet(root)
    assert ds.ids == ["val/linked.png"] and np.array_equal(np.asarray(ds[0].data), np.asarray(Image.open(elsewhere)))
    (root / "list.csv").write_text("val/linked.png,1\n")
    assert load_image_csv(root, root / "list.csv").ids == ["val/linked.png"]
    assert ds.fingerprint()


@pytest.mark.parametrize("split", ["../../../S", "..", "a/b", "/etc", "a\\b", "."])
def test_a_split_is_one_folder_name(classification, tmp_path, split):
    write_image(tmp_path / "val" / "n01" / "x.png")
    for name in ("imagenet", "folder"):
        with pytest.raises(CommitteeError, match=r"--split .* is refused: a split is one folder name"):
            classification.build_dataset(name, tmp_path, split=split)
    assert contained_path("a/./b.png", "f:1") == "a/./b.png"


def test_the_tool_refuses_an_escaping_split_with_one_error_line(tmp_path, capsys):
    from committee_tasks.cli.eval import main

    write_image(tmp_path / "data" / "val" / "cat" / "x.png")
    write_image(tmp_path / "S" / "cat" / "x.png")  # what '../S' would reach
    code = main(["--task", "classification", "--dataset", "folder", "--data-root", str(tmp_path / "data"),
                 "--split", "../S", "--ensemble", "resnet20,resnet32", "--cache-dir", str(tmp_path / "cache"),
                 "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: --split '../S' is refused") and err.count("\n") == 1


def test_an_unreadable_data_folder_is_one_error_line(tmp_path, capsys, monkeypatch):
    """As root (this machine) chmod does not stop reading, so the listing is made to fail as it
    does for another user: PermissionError naming the folder."""
    from committee_tasks.cli.eval import main

    write_image(tmp_path / "data" / "cat" / "x.png")
    listing = Path.iterdir

    def refused(self):
        if self.name == "cat":
            raise PermissionError(13, "Permission denied", str(self))
        return listing(self)

    monkeypatch.setattr(Path, "iterdir", refused)
    monkeypatch.setattr(Path, "rglob", lambda self, pattern: refused(self) if self.name == "cat" else iter(()))
    code = main(["--task", "classification", "--dataset", "folder", "--data-root", str(tmp_path / "data"),
                 "--models", "resnet20", "--cache-dir", str(tmp_path / "cache"), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1, err
    assert err.startswith(f"error: dataset 'folder': cannot read {tmp_path / 'data' / 'cat'} (Permission denied)")


# ---- 6. wrong-size samples are skipped, never run at the wrong size, never abort the run ---------
def mixed_folder(root: Path, sizes) -> ImageFileDataset:
    for i, size in enumerate(sizes):
        write_image(root / "a" / f"img{i}.png", i, size=size)
    return load_image_folder(root)


def cifar_member() -> types.SimpleNamespace:
    """The CIFAR ResNets' zoo entry and preprocessing (no resize, no crop), without the weights."""
    transform = cifar_transform()
    return types.SimpleNamespace(name="resnet20", entry=classification_zoo()["resnet20"], transform=transform,
                                 transform_key=repr(transform))


def test_a_cifar_model_on_64x64_images_at_batch_size_1_skips_them(tmp_path):
    ds = mixed_folder(tmp_path, [(32, 32), (64, 64), (32, 32)])
    member = cifar_member()
    shapes = declared_input_shapes([member])
    assert shapes == {member.transform_key: ((3, 32, 32), "resnet20")}
    loader = make_loader(ds, {member.transform_key: member.transform}, range(3), 1, 0, False, input_shapes=shapes)
    batches = list(loader)
    assert [b.ids for b in batches] == [["a/img0.png"], [], ["a/img2.png"]]
    (skip,) = batches[1].skipped
    assert skip.id == "a/img1.png"
    assert "wrong size" in skip.reason and "(3, 64, 64)" in skip.reason and "resnet20 take (3, 32, 32)" in skip.reason


def test_images_of_different_sizes_in_one_batch_run_in_parts_of_one_size(tmp_path):
    ds = mixed_folder(tmp_path, [(16, 16), (16, 16), (24, 24), (16, 16), (24, 24), (24, 24), (24, 24)])
    transform = ImagePreprocessing()  # no declared size: every sample runs, in a part of its own size
    batches = list(make_loader(ds, {"k": transform}, range(7), 4, 0, False))
    parts = [[(p.ids, tuple(p.inputs["k"].shape)) for p in b.parts()] for b in batches]
    assert parts == [[(["a/img0.png", "a/img1.png", "a/img3.png"], (3, 3, 16, 16)), (["a/img2.png"], (1, 3, 24, 24))],
                     [(["a/img4.png", "a/img5.png", "a/img6.png"], (3, 3, 24, 24))]]
    assert [len(b) for b in batches] == [4, 3] and not any(b.skipped for b in batches)
    items = [PoolInputs(ds, {"k": transform})[i] for i in (2, 0, 4)]  # parts follow the first sample's shape
    assert [p.ids for p in collate(items).parts()] == [["a/img2.png", "a/img4.png"], ["a/img0.png"]]


def test_the_loop_runs_every_size_and_skips_only_what_its_members_cannot_take(classification, tmp_path, monkeypatch):
    write_image(tmp_path / "data" / "b" / "img3.png", 3, size=(16, 16))  # two classes, so outputs differ
    ds = mixed_folder(tmp_path / "data", [(16, 16), (24, 24), (16, 16)])
    member = tiny_member(classes=2)
    predictions, _ = evaluate_pool(classification, [member], ds, PredictionCache(tmp_path / "cache"),
                                   options=loop_options(batch_size=4))
    # no size declared: the 24x24 image runs in a part of its own, and equals a run at batch size 1
    assert sorted(predictions.ids) == ["a/img0.png", "a/img1.png", "a/img2.png", "b/img3.png"]
    assert not predictions.skipped
    one_by_one, _ = evaluate_pool(classification, [member], ds, PredictionCache(tmp_path / "cache1"),
                                  options=loop_options(batch_size=1))
    order = [list(one_by_one.ids).index(i) for i in predictions.ids]
    assert len({tuple(row) for row in predictions.outputs[member.name]}) == 4  # each image its own output
    np.testing.assert_array_equal(predictions.outputs[member.name], one_by_one.outputs[member.name][order])
    # a member declaring 16x16 at batch size 1: the 24x24 image is skipped, not run at the wrong size
    sized = tiny_member(classes=2, entry=types.SimpleNamespace(input_size=(3, 16, 16), variant=None), name="sized")
    shapes = declared_input_shapes([sized])
    real_make_loader = make_loader
    monkeypatch.setattr("committee_tasks.engine.loop.make_loader",  # what the loop passes (see test below)
                        lambda *a, **k: real_make_loader(*a, **{"input_shapes": shapes, **k}))
    predictions, _ = evaluate_pool(classification, [sized], ds, PredictionCache(tmp_path / "cache2"),
                                   options=loop_options(batch_size=1))
    assert list(predictions.skipped) == ["a/img1.png"] and "sized take (3, 16, 16)" in predictions.skipped["a/img1.png"]


def test_a_sample_an_earlier_version_skipped_for_its_batchs_size_runs_now(classification, tmp_path, monkeypatch):
    """Earlier versions skipped a sample whose size differed from the rest of its batch; a cache
    that remembers such a skip computes it on the next run, even with everything else cached."""
    ds = mixed_folder(tmp_path / "data", [(16, 16), (24, 24), (16, 16)])
    member, cache = tiny_member(classes=1), PredictionCache(tmp_path / "cache")
    real_getitem = PoolInputs.__getitem__
    old_reason = ("wrong size: its input has shape (3, 24, 24) but the rest of its batch (3, 16, 16) (no member "
                  "declares an input size; for images of different sizes use --batch-size 1)")

    def as_before(self, index):
        return Skipped("a/img1.png", old_reason) if self.dataset.ids[index] == "a/img1.png" else real_getitem(self, index)

    monkeypatch.setattr(PoolInputs, "__getitem__", as_before)
    first, _ = evaluate_pool(classification, [member], ds, cache, options=loop_options())
    assert list(first.skipped) == ["a/img1.png"]
    monkeypatch.setattr(PoolInputs, "__getitem__", real_getitem)
    again, _ = evaluate_pool(classification, [member], ds, cache, options=loop_options())
    assert sorted(again.ids) == ["a/img0.png", "a/img1.png", "a/img2.png"] and not again.skipped


def test_the_loop_passes_the_members_declared_input_sizes(classification, tmp_path, monkeypatch):
    seen = {}
    real_make_loader = make_loader

    def spy(*args, **kwargs):
        seen.update(kwargs.get("input_shapes") or {})
        return real_make_loader(*args, **kwargs)

    monkeypatch.setattr("committee_tasks.engine.loop.make_loader", spy)
    ds = mixed_folder(tmp_path / "data", [(16, 16), (24, 24)])
    sized = tiny_member(classes=1, entry=types.SimpleNamespace(input_size=(3, 16, 16), variant=None), name="sized")
    predictions, _ = evaluate_pool(classification, [sized], ds, PredictionCache(tmp_path / "cache"),
                                   options=loop_options(batch_size=1))
    assert seen == {sized.transform_key: ((3, 16, 16), "sized")}
    assert list(predictions.skipped) == ["a/img1.png"]


def test_segmentation_like_members_declare_no_size():
    free = types.SimpleNamespace(name="seg", entry=types.SimpleNamespace(input_size=(3,)), transform_key="k")
    video = types.SimpleNamespace(name="x3d", entry=types.SimpleNamespace(input_size=(3, 13, 182, 182)),
                                  transform_key="v")
    assert declared_input_shapes([free, video, types.SimpleNamespace(name="own", transform_key="o")]) == {}
    # members sharing a preprocessing but declaring different sizes: no claim either
    a = types.SimpleNamespace(name="a", entry=types.SimpleNamespace(input_size=(3, 8, 8)), transform_key="k")
    b = types.SimpleNamespace(name="b", entry=types.SimpleNamespace(input_size=(3, 9, 9)), transform_key="k")
    assert declared_input_shapes([a, b]) == {}
    c = types.SimpleNamespace(name="c", entry=types.SimpleNamespace(input_size=(3, 8, 8)), transform_key="k")
    assert declared_input_shapes([a, c]) == {"k": ((3, 8, 8), "a, c")}


# ---- 7. an image folder's fingerprint covers the content of its files --------------------------
def test_an_image_overwritten_by_one_of_the_same_size_changes_the_fingerprint(tmp_path):
    root = tmp_path / "data"  # BMP: the same size for any pixels
    first = write_image(root / "a" / "img0.bmp", 0)
    write_image(root / "b" / "img1.bmp", 1)
    before = load_image_folder(root).fingerprint()
    stat = first.stat()
    other = write_image(tmp_path / "other.bmp", 2)
    assert other.stat().st_size == stat.st_size and other.read_bytes() != first.read_bytes()
    first.write_bytes(other.read_bytes())
    os.utime(first, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # same size, same mtime: only ctime tells
    assert first.stat().st_size == stat.st_size and first.stat().st_mtime_ns == stat.st_mtime_ns
    after = load_image_folder(root).fingerprint()
    assert after != before
    first.write_bytes(write_image(tmp_path / "again.bmp", 0).read_bytes())  # the original content back
    assert load_image_folder(root).fingerprint() == before


def test_file_hashes_are_remembered_with_one_index_write(tmp_path, monkeypatch):
    root = tmp_path / "data"
    for i in range(30):
        write_image(root / f"c{i % 3}" / f"img{i}.png", i)
    ds = load_image_folder(root)
    reads, writes = [], []
    real_sha, real_write = file_hashes._sha256, file_hashes.atomic_write
    monkeypatch.setattr(file_hashes, "_sha256", lambda p: reads.append(p) or real_sha(p))
    monkeypatch.setattr(file_hashes, "atomic_write", lambda *a: writes.append(a[0]) or real_write(*a))
    first = ds.fingerprint()
    assert len(reads) == 30 and len(writes) == 1  # every file read once, the index written once
    assert ds.fingerprint() == first and len(reads) == 30 and len(writes) == 1  # remembered: nothing read
    write_image(root / "c0" / "img0.png", 99, size=(9, 9))
    assert ds.fingerprint() != first and len(reads) == 31 and len(writes) == 2  # only the changed file
    # a corrupt index is only a memo: ignored and rewritten
    file_hashes.index_path().write_text("{not json")
    assert ds.fingerprint() != first and len(reads) == 61


def test_an_unreadable_image_does_not_stop_the_fingerprint(tmp_path):
    root = tmp_path / "data"
    write_image(root / "a" / "img0.png")
    ds = load_image_folder(root)
    fingerprint = ds.fingerprint()
    (root / "a" / "img0.png").unlink()  # gone (or unreadable) after listing: the loop skips it
    assert ds.fingerprint() != fingerprint
