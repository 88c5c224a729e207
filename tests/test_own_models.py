"""Your own models in every task: plain nn.Module builders of a throwaway package, described in a
zoo file, with checkpoints in three formats (a plain state dict, ``{"model": ...}``, a
DataParallel ``module.`` prefix), a class map dropping an extra channel and (segmentation) a
member at 1/8 resolution. Every member, an ensemble and a cascade equal a plain torch/numpy
reference computed here from the same models."""
from __future__ import annotations

import dataclasses
import json
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from committee_tasks import Cascade, CommitteeError, Ensemble, Pool
from committee_tasks.api.options import ExecutionOptions
from committee_tasks.core.registry import get_task
from committee_tasks.core.samples import Sample, SampleDataset

PACKAGE = '''
import torch
from torch import nn


def image_net(classes=3, width=6, seed=0, pool="avg"):
    torch.manual_seed(seed)
    pooling = nn.AdaptiveAvgPool2d(1) if pool == "avg" else nn.AdaptiveMaxPool2d(1)  # no weights either way
    return nn.Sequential(nn.Conv2d(3, width, 3, padding=1), nn.ReLU(), pooling, nn.Flatten(),
                         nn.Linear(width, classes))


class SegNet(nn.Module):
    """Class scores at 1/stride of the input."""

    def __init__(self, classes=3, stride=1, seed=0, multiple=1):
        super().__init__()
        torch.manual_seed(seed)
        self.body, self.head, self.stride = nn.Conv2d(3, 8, 3, padding=1), nn.Conv2d(8, classes, 1), stride
        self.multiple = multiple  # the input sizes it takes (an encoder-decoder's skips need multiples)

    def forward(self, x):
        assert x.shape[-2] % self.multiple == 0 and x.shape[-1] % self.multiple == 0, "sizes must match"
        x = torch.relu(self.body(x))
        return self.head(nn.functional.avg_pool2d(x, self.stride) if self.stride > 1 else x)


def clip_net(classes=3, seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv3d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool3d(1), nn.Flatten(),
                         nn.Linear(4, classes))
'''
CLASSES = 3
OPTIONS = ExecutionOptions(cache_dir="memory", output_dtype="float32", workers=0, progress=False)
MEAN, STD = [0.4, 0.5, 0.6], [0.2, 0.25, 0.3]


def write_package(folder: Path, name: str):
    """The throwaway package ``name`` next to the zoo file, imported (the zoo file imports it from there)."""
    import importlib
    import sys

    (folder / name).mkdir(parents=True)
    (folder / name / "__init__.py").write_text(textwrap.dedent(PACKAGE))
    sys.path.insert(0, str(folder))
    try:
        return importlib.import_module(name)
    finally:
        sys.path.remove(str(folder))


def save_formats(folder: Path, modules: dict[str, torch.nn.Module]) -> dict[str, dict]:
    """Each module's checkpoint in its own format; returns the zoo file's weights field of each."""
    formats = ["plain", "nested", "prefixed"]
    fields = {}
    for (name, module), kind in zip(modules.items(), formats):
        state = module.state_dict()
        path = folder / f"{name}.pth"
        if kind == "plain":
            torch.save(state, path)
            fields[name] = {"path": path.name}
        elif kind == "nested":
            torch.save({"epoch": 7, "model": state}, path)
            fields[name] = {"path": path.name, "key": "model"}
        else:
            torch.save({f"module.{k}": v for k, v in state.items()}, path)
            fields[name] = {"path": path.name, "strip_prefix": "module."}
    return fields


def probabilities(logits: torch.Tensor, class_map=None) -> np.ndarray:
    """The reference: softmax over the class map's channels."""
    if class_map is not None:
        logits = logits[:, class_map]
    return torch.softmax(logits.double(), dim=1).numpy()


def evaluated(task_name: str, world: dict, dataset: SampleDataset | None = None):
    """The task with the world's zoo file, its members' names, and their pool on the world's data."""
    task = get_task(task_name)
    task.add_zoo_file(world["zoo"])
    names = list(world["modules"])
    return task, names, Pool.evaluate(names, world["data"] if dataset is None else dataset, task, options=OPTIONS)


def cascade_reference(probs: list[np.ndarray], threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """Stage-k output = mean of the first k+1 members; exit once its max probability >= threshold."""
    out, stage = np.array(probs[-1] * 0), np.full(len(probs[0]), len(probs) - 1)
    done = np.zeros(len(probs[0]), bool)
    for k in range(len(probs)):
        mean = np.mean(probs[: k + 1], axis=0)
        stop = ~done & ((mean.max(axis=1) >= threshold) if k < len(probs) - 1 else True)
        out[stop], stage[stop], done = mean[stop], k, done | stop
    return out, stage


# ---- classification ------------------------------------------------------------------------
class ImageArrays(SampleDataset):
    name = "own-images"

    def __init__(self, images: np.ndarray, labels: np.ndarray):
        self.images, self.labels, self._ids = images, labels, [f"{i:03d}" for i in range(len(labels))]

    def fingerprint(self) -> str:
        return str(hash(self.images.tobytes()))

    def __getitem__(self, index: int) -> Sample:
        return Sample(self._ids[index], self.images[index], int(self.labels[index]))


@pytest.fixture(scope="module")
def image_world(tmp_path_factory):
    folder = tmp_path_factory.mktemp("own_images")
    models = write_package(folder, "own_image_models")
    package = models.__name__
    modules = {"plain_a": models.image_net(CLASSES, 4, seed=1), "nested_b": models.image_net(CLASSES, 8, seed=2),
              "prefixed_c": models.image_net(CLASSES + 1, 6, seed=3)}  # an extra "void" output
    weights = save_formats(folder, modules)
    pre = {"crop": 16, "mean": MEAN, "std": STD}
    entries = [
        {"name": "plain_a", "builder": f"{package}:image_net", "kwargs": {"classes": 3, "width": 4},
         "weights": weights["plain_a"], "num_classes": 3, "preprocessing": pre},
        {"name": "nested_b", "builder": f"{package}:image_net", "kwargs": {"classes": 3, "width": 8},
         "weights": weights["nested_b"], "num_classes": 3, "preprocessing": {**pre, "channels": "BGR"}},
        {"name": "prefixed_c", "builder": f"{package}:image_net", "kwargs": {"classes": 4, "width": 6},
         "weights": weights["prefixed_c"], "outputs": {"type": "logits", "class_map": [0, 1, 2]},
         "preprocessing": {**pre, "scale": 1.0, "mean": [100, 110, 120], "std": [50, 60, 70]}},
    ]
    zoo = folder / "zoo.json"
    zoo.write_text(json.dumps({"models": entries}))
    rng = np.random.default_rng(0)
    data = ImageArrays(rng.integers(0, 256, (40, 16, 16, 3), dtype=np.uint8), rng.integers(0, CLASSES, 40))
    return {"zoo": zoo, "modules": modules, "data": data}


def _image_reference(world) -> dict[str, np.ndarray]:
    x = torch.from_numpy(world["data"].images).permute(0, 3, 1, 2).double()
    mean, std = torch.tensor(MEAN).view(1, 3, 1, 1), torch.tensor(STD).view(1, 3, 1, 1)
    inputs = {"plain_a": (x / 255 - mean) / std, "nested_b": (x.flip(1) / 255 - mean) / std,
              "prefixed_c": (x - torch.tensor([100., 110., 120.]).view(1, 3, 1, 1))
              / torch.tensor([50., 60., 70.]).view(1, 3, 1, 1)}
    with torch.no_grad():
        return {name: probabilities(module.double()(inputs[name]).float(), [0, 1, 2] if name == "prefixed_c" else None)
                for name, module in world["modules"].items()}


def test_classification_members_and_committees_equal_the_reference(image_world):
    _, names, pool = evaluated("classification", image_world)
    reference = _image_reference(image_world)
    labels = image_world["data"].labels
    for name in names:
        result = pool.score(name)
        np.testing.assert_allclose(result.combined, reference[name], atol=2e-5)
        assert result.metric == pytest.approx(100 * np.mean(reference[name].argmax(1) == labels))
    ensemble = pool.score(Ensemble(names))
    np.testing.assert_allclose(ensemble.combined, np.mean([reference[n] for n in names], axis=0), atol=2e-5)
    threshold = float(np.median(reference["plain_a"].max(axis=1)))
    cascade = pool.score(Cascade(names, threshold))
    expected, stages = cascade_reference([reference[n] for n in names], threshold)
    np.testing.assert_array_equal(cascade.exit_stage, stages)
    np.testing.assert_allclose(cascade.combined, expected, atol=2e-5)


# ---- segmentation --------------------------------------------------------------------------
class SegmentationArrays(SampleDataset):
    """BGR uint8 images (3, H, W) and label maps, as the segmentation datasets yield them."""

    name = "own-segmentation"

    def __init__(self, images: np.ndarray, labels: np.ndarray):
        self.images, self.labels, self._ids = images, labels, [f"{i:02d}" for i in range(len(labels))]

    def fingerprint(self) -> str:
        return str(hash(self.images.tobytes() + self.labels.tobytes()))

    def __getitem__(self, index: int) -> Sample:
        return Sample(self._ids[index], torch.from_numpy(self.images[index]), torch.from_numpy(self.labels[index]))


@pytest.fixture(scope="module")
def segmentation_world(tmp_path_factory):
    pytest.importorskip("mmseg", reason="the segmentation task needs the segmentation extra")
    folder = tmp_path_factory.mktemp("own_segmentation")
    models = write_package(folder, "own_segmentation_models")
    package = models.__name__
    modules = {"full_a": models.SegNet(CLASSES, 1, seed=1), "eighth_b": models.SegNet(CLASSES, 8, seed=2),
              "void_c": models.SegNet(CLASSES + 1, 1, seed=3)}
    weights = save_formats(folder, modules)
    pre = {"mean": MEAN, "std": STD}  # RGB, pixels / 255
    entries = [
        {"name": "full_a", "builder": f"{package}:SegNet", "kwargs": {"classes": 3, "stride": 1, "seed": 0},
         "weights": weights["full_a"], "num_classes": 3, "preprocessing": pre},
        {"name": "eighth_b", "builder": f"{package}:SegNet", "kwargs": {"classes": 3, "stride": 8, "seed": 0},
         "weights": weights["eighth_b"], "num_classes": 3, "preprocessing": pre,
         "outputs": {"stride": 8, "upsample": "bilinear", "align_corners": False}},
        {"name": "void_c", "builder": f"{package}:SegNet", "kwargs": {"classes": 4, "stride": 1, "seed": 0},
         "weights": weights["void_c"], "preprocessing": {**pre, "channels": "BGR"},
         "outputs": {"class_map": [0, 1, 2]}},
    ]
    zoo = folder / "zoo.yaml"
    import yaml

    zoo.write_text(yaml.safe_dump({"models": entries}))
    rng = np.random.default_rng(1)
    labels = rng.integers(0, CLASSES, (6, 32, 40))
    labels[:, :2] = 255  # ignored pixels
    data = SegmentationArrays(rng.integers(0, 256, (6, 3, 32, 40), dtype=np.uint8), labels)
    return {"zoo": zoo, "modules": modules, "data": data}


def _segmentation_reference(world) -> dict[str, np.ndarray]:
    bgr = torch.from_numpy(world["data"].images).double()
    mean, std = torch.tensor(MEAN, dtype=torch.float64).view(1, 3, 1, 1), torch.tensor(STD).view(1, 3, 1, 1)
    rgb = (bgr.flip(1) / 255 - mean) / std
    inputs = {"full_a": rgb, "eighth_b": rgb, "void_c": (bgr / 255 - mean) / std}
    out = {}
    with torch.no_grad():
        for name, module in world["modules"].items():
            logits = module.double()(inputs[name])
            logits = torch.nn.functional.interpolate(logits, size=bgr.shape[-2:], mode="bilinear", align_corners=False)
            out[name] = probabilities(logits, [0, 1, 2] if name == "void_c" else None)
    return out


def _iou_statistics(probs: np.ndarray, labels: np.ndarray, classes: int = CLASSES) -> np.ndarray:
    """Per image: intersection, union, predicted and label area per class (valid pixels only)."""
    rows = []
    for p, t in zip(probs.argmax(1), labels):
        valid = t != 255
        p, t = p[valid], t[valid]
        inter = np.bincount(t[p == t], minlength=classes)
        pred, label = np.bincount(p, minlength=classes), np.bincount(t, minlength=classes)
        rows.append(np.concatenate([inter, pred + label - inter, pred, label]))
    return np.array(rows, dtype=np.float64)


def test_segmentation_members_and_committees_equal_the_reference(segmentation_world):
    task, names, pool = evaluated("segmentation", segmentation_world)
    reference = _segmentation_reference(segmentation_world)
    labels = segmentation_world["data"].labels
    for name in names:
        np.testing.assert_array_equal(pool.score(name).sample_statistics, _iou_statistics(reference[name], labels))
    ensemble = np.mean([reference[n] for n in names], axis=0)
    np.testing.assert_array_equal(pool.score(Ensemble(names)).sample_statistics, _iou_statistics(ensemble, labels))
    assert pool.score(Ensemble(names)).metric == pytest.approx(task.metric(_iou_statistics(ensemble, labels).sum(0)))
    assert not np.array_equal(reference["eighth_b"].argmax(1), reference["full_a"].argmax(1))


def test_a_plain_segmentation_module_of_some_sizes_takes_a_size_divisor(segmentation_world):
    """A module taking only multiples of 16 failed on 32x40 images, which ended the run; with
    size_divisor the image is padded (right, bottom) and the outputs cropped back: for a model
    whose border sees zeros either way (3x3 convolutions padded with 0), the same maps."""
    import yaml

    from committee_tasks.core.errors import CommitteeError

    entries = yaml.safe_load(segmentation_world["zoo"].read_text())["models"]
    full = next(e for e in entries if e["name"] == "full_a")
    picky = {**full, "name": "picky", "kwargs": {**full["kwargs"], "multiple": 16}}
    padded = {**picky, "name": "padded", "preprocessing": {**full["preprocessing"], "size_divisor": 16}}
    zoo = segmentation_world["zoo"].with_name("divisor_zoo.yaml")  # beside the weights it names
    zoo.write_text(yaml.safe_dump({"models": [full, picky, padded]}))
    task = get_task("segmentation")
    task.add_zoo_file(zoo)
    pool = Pool.evaluate(["full_a", "padded"], segmentation_world["data"], task, options=OPTIONS)
    np.testing.assert_array_equal(pool.score("padded").sample_statistics, pool.score("full_a").sample_statistics)
    assert "padded to a multiple of 16" in pool.member("padded").cost_note()
    with pytest.raises(CommitteeError, match="member 'picky' failed on a batch .* needs size_divisor"):
        Pool.evaluate(["picky"], segmentation_world["data"], task, options=OPTIONS)


# ---- video ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def video_world(tmp_path_factory):
    pytest.importorskip("decord", reason="the video task needs the video extra")
    from tests.video_fixtures import make_dataset

    folder = tmp_path_factory.mktemp("own_video")
    models = write_package(folder, "own_video_models")
    package = models.__name__
    modules = {"clip_a": models.clip_net(CLASSES, seed=1), "clip_b": models.clip_net(CLASSES, seed=2),
              "clip_void": models.clip_net(CLASSES + 1, seed=3)}
    weights = save_formats(folder, modules)
    recipe = {"frames": 4, "sampling_rate": 2, "short_side": 24, "crop_size": 24, "clips": 2, "crops": 1}
    entries = [{"name": name, "builder": f"{package}:clip_net",
                "kwargs": {"classes": CLASSES + (name == "clip_void")}, "weights": weights[name], "recipe": recipe,
                **({"outputs": {"class_map": [0, 1, 2]}} if name == "clip_void" else {"num_classes": CLASSES})}
               for name in modules]
    zoo = folder / "zoo.json"
    zoo.write_text(json.dumps({"models": entries}))
    return {"zoo": zoo, "modules": modules, "root": make_dataset(folder / "videos", per_class=2, frames=24)}


def test_video_members_and_committees_equal_the_reference(video_world):
    from tests.video_fixtures import CLASSES as NAMES

    dataset = get_task("video").build_dataset("kinetics400", video_world["root"], split="val")
    task, names, pool = evaluated("video", video_world, dataset)
    members = {n: pool.member(n) for n in names}
    reference = {n: [] for n in names}
    for i in range(len(dataset)):
        views, _ = task.member_inputs(dataset[i].data, {m.transform_key: m.transform for m in members.values()})
        for name, member in members.items():
            clips = views[member.transform_key].double()  # (views, 3, T, crop, crop) uint8
            x = (clips / 255 - 0.45) / 0.225  # the recipe's default mean and std
            with torch.no_grad():
                logits = video_world["modules"][name].double()(x)
            reference[name].append(probabilities(logits, [0, 1, 2] if name == "clip_void" else None).mean(0))
    reference = {n: np.array(v) for n, v in reference.items()}
    labels = np.array([NAMES.index(Path(sid).parent.name) for sid in dataset.ids])
    for name in names:
        np.testing.assert_allclose(pool.score(name).combined, reference[name], atol=2e-5)
    ensemble = np.mean([reference[n] for n in names], axis=0)
    np.testing.assert_allclose(pool.score(Ensemble(names)).combined, ensemble, atol=2e-5)
    threshold = float(np.median(reference["clip_a"].max(axis=1)))
    expected, stages = cascade_reference([reference[n] for n in names], threshold)
    cascade = pool.score(Cascade(names, threshold))
    np.testing.assert_array_equal(cascade.exit_stage, stages)
    np.testing.assert_allclose(cascade.combined, expected, atol=2e-5)
    assert pool.score(Ensemble(names)).metric == pytest.approx(100 * np.mean(ensemble.argmax(1) == labels))


# ---- bad zoo files -------------------------------------------------------------------------
def _zoo(tmp_path, *entries) -> Path:
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"models": list(entries)}))
    return path


def test_bad_zoo_entries_name_the_entry_and_the_field(tmp_path, image_world):
    task = get_task("classification")
    pre = {"crop": 16}
    with pytest.raises(CommitteeError, match=r"model 'x': unknown field 'preprocesing'; did you mean 'preprocessing'"):
        task.add_zoo_file(_zoo(tmp_path, {"name": "x", "builder": "m:f", "preprocesing": pre}))
    with pytest.raises(CommitteeError, match=r"model 'x': field 'weights': unknown field\(s\) \['prefix'\]"):
        task.add_zoo_file(_zoo(tmp_path, {"name": "x", "builder": "m:f", "num_classes": 2, "preprocessing": pre,
                                          "weights": {"path": "w.pth", "prefix": "module."}}))
    with pytest.raises(CommitteeError, match=r"class_map must list distinct output channels"):
        task.add_zoo_file(_zoo(tmp_path, {"name": "x", "builder": "m:f", "preprocessing": pre,
                                          "outputs": {"class_map": [0, 0]}}))
    task.add_zoo_file(_zoo(tmp_path, {"name": "gone", "builder": "no_such_package.models:net", "num_classes": 2,
                                      "preprocessing": pre}))
    with pytest.raises(CommitteeError, match=r"model 'gone': field 'builder': cannot import "
                                             r"'no_such_package.models:net' \(ModuleNotFoundError"):
        task.build_member("gone")


def test_weights_that_do_not_fit_list_missing_and_unexpected_keys_and_the_fix(tmp_path, image_world):
    folder = image_world["zoo"].parent
    task = get_task("classification")
    base = {"builder": "own_image_models:image_net", "preprocessing": {"crop": 16}, "num_classes": 3}
    zoo = folder / "mismatch.json"
    zoo.write_text(json.dumps({"models": [
        {**base, "name": "no_key", "kwargs": {"width": 8}, "weights": "nested_b.pth"},
        {**base, "name": "no_prefix", "kwargs": {"classes": 4}, "num_classes": 4, "weights": "prefixed_c.pth"},
        {**base, "name": "wrong_arch", "kwargs": {"width": 5}, "weights": "plain_a.pth"},
        {**base, "name": "out_of_range", "kwargs": {"classes": 3, "width": 4}, "weights": "plain_a.pth",
         "num_classes": None, "outputs": {"class_map": [0, 1, 5]}}]}))
    task.add_zoo_file(zoo)
    with pytest.raises(CommitteeError, match=r"4 missing key\(s\): '0.bias', '0.weight', '4.bias', '4.weight'; "
                                             r"2 unexpected key\(s\): 'epoch', 'model'\. .*\"key\": \"model\""):
        task.build_member("no_key")
    with pytest.raises(CommitteeError, match=r"4 unexpected key\(s\): 'module.0.bias'.*\"strip_prefix\": \"module.\""):
        task.build_member("no_prefix")
    with pytest.raises(CommitteeError, match=r"of another shape \(file vs model\): '0.bias \(4,\) vs \(5,\)'"):
        task.build_member("wrong_arch")
    member = task.build_member("out_of_range")
    with pytest.raises(CommitteeError, match=r"model 'out_of_range': class_map names output channels \[5\], but the "
                                             r"model outputs 3 channels"):
        member.predict(member.transform(np.zeros((16, 16, 3), np.uint8))[None])


def test_weight_file_mistakes_name_the_model_and_the_fix(image_world):
    """A missing file is not said to ship with the package, a sha256 without a URL is not to be
    downloaded again, and a prefix stripped without its dot gets the dot."""
    folder = image_world["zoo"].parent
    base = {"builder": "own_image_models:image_net", "preprocessing": {"crop": 16}, "num_classes": 3,
            "kwargs": {"classes": 4, "width": 6}}
    zoo = folder / "weight_mistakes.json"
    zoo.write_text(json.dumps({"models": [
        {**base, "name": "missing", "weights": "nothere.pth"},
        {**base, "name": "wrong_sha",
         "weights": {"path": "prefixed_c.pth", "strip_prefix": "module.", "sha256": "0" * 64}},
        {**base, "name": "no_dot", "weights": {"path": "prefixed_c.pth", "strip_prefix": "module"}}]}))
    task = get_task("classification")
    task.add_zoo_file(zoo)
    with pytest.raises(CommitteeError, match=r"model 'missing' \(zoo file .*weight_mistakes.json\): weights file "
                                             r"'nothere.pth' not found in .*\(or pass --weights-dir DIR\)$"):
        task.describe_member("missing")
    with pytest.raises(CommitteeError, match=r"model 'wrong_sha' .* another release; if it is the right file, correct "
                                             r"the sha256 written for it \(or leave the sha256 out\)$"):
        task.build_member("wrong_sha")
    with pytest.raises(CommitteeError, match=r"Every key starts with '.': the strip_prefix removed a prefix but not "
                                             r"its dot; end it with the dot \(\"strip_prefix\": \"module.\""):
        task.build_member("no_dot")


def test_a_base_model_with_new_weights_is_one_entry(tmp_path):
    """A fine-tuned copy of a zoo architecture: ``base`` and its kwargs, new weights and class map."""
    from committee_tasks_builtin.classification.cifar_resnet import CifarResNet

    torch.manual_seed(0)
    tuned = CifarResNet(20, num_classes=5)
    torch.save({"state_dict": tuned.state_dict()}, tmp_path / "tuned.pth")
    zoo = _zoo(tmp_path, {"name": "resnet20_tuned", "base": "resnet20", "kwargs": {"num_classes": 5},
                          "weights": {"path": "tuned.pth", "key": "state_dict"}, "outputs": {"class_map": [4, 0]}})
    task = get_task("classification")
    task.add_zoo_file(zoo)
    entry = task.model_entry("resnet20_tuned")
    assert entry.num_classes == 2 and entry.metrics == {} and entry.input_size == (3, 32, 32)
    member = task.build_member("resnet20_tuned")
    image = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    x = member.transform(image)[None]
    with torch.no_grad():
        expected = torch.softmax(tuned.eval()(x)[:, [4, 0]], dim=1)
    torch.testing.assert_close(member.predict(x), expected)
    assert member.fingerprint != get_task("classification").describe_member("resnet20").fingerprint


def test_an_entry_without_weights_is_built_the_same_every_time(tmp_path, caplog):
    """Random weights drawn from torch's global generator differed with what was built before
    (one model scored 40 or 20), yet were cached as the same "random-init" member."""
    builder = "committee_tasks_builtin.classification.cifar_resnet:CifarResNet"
    zoo = _zoo(tmp_path, *({"name": f"rand{depth}", "builder": builder, "kwargs": {"depth": depth}, "num_classes": 10}
                           | {"preprocessing": {"crop": 32}} for depth in (20, 32)))
    task = get_task("classification")
    task.add_zoo_file(zoo)
    alone = task.build_member("rand20").module.state_dict()
    torch.manual_seed(123)
    state = torch.random.get_rng_state()
    task.build_member("rand32")
    after = task.build_member("rand20").module.state_dict()
    assert all(torch.equal(alone[k], after[k]) for k in alone)
    assert torch.equal(torch.random.get_rng_state(), state)  # the caller's generator untouched
    assert "model 'rand20' has no weights: it runs with random ones" in caplog.text


def test_a_card_of_zoo_file_models_loads_with_the_task_that_read_the_file(image_world):
    """get_task makes a new task each call, so load_committee(card) does not know the zoo file: the
    error says to pass the task (it said only to build the members by hand)."""
    from committee_tasks import load_committee

    task, names, pool = evaluated("classification", image_world)
    card = pool.card(Ensemble(names[:2]))
    with pytest.raises(CommitteeError, match=r"member 'plain_a' of the card cannot be built: it is not in the zoo "
                                             r"of task 'classification'. A model of a zoo file: pass the task that read "
                                             r"it, load_committee\(card, task=task\) after task.add_zoo_file\(path\)"):
        load_committee(card)
    out = load_committee(card, task=task, device="cpu").predict_samples([image_world["data"][i].data for i in range(4)])
    np.testing.assert_allclose(out.probs.numpy(), pool.score(Ensemble(names[:2])).combined[:4], atol=1e-6)


def test_builder_kwargs_are_part_of_the_cache_key(tmp_path, image_world):
    """The same weights with other kwargs (max pooling for average) are another member: a disk
    cache written with one entry must not answer for the other (it did, with the old figures)."""
    folder = image_world["zoo"].parent
    entry = {"name": "pooled", "builder": "own_image_models:image_net", "kwargs": {"classes": 3, "width": 4},
             "weights": "plain_a.pth", "num_classes": 3, "preprocessing": {"crop": 16}}
    options = dataclasses.replace(OPTIONS, cache_dir=tmp_path / "cache")
    outputs, fingerprints = {}, {}
    for pool in ("avg", "max", "avg"):
        zoo = folder / f"pooled_{pool}.json"
        zoo.write_text(json.dumps({"models": [{**entry, "kwargs": {**entry["kwargs"], "pool": pool}}]}))
        task = get_task("classification")
        task.add_zoo_file(zoo)
        fingerprints.setdefault(pool, task.describe_member("pooled").fingerprint)
        cached = Pool.evaluate(["pooled"], image_world["data"], task, cache=tmp_path / "cache", options=options)
        fresh = Pool.evaluate(["pooled"], image_world["data"], task, options=OPTIONS)  # in memory
        np.testing.assert_array_equal(cached.predictions.outputs["pooled"], fresh.predictions.outputs["pooled"])
        outputs.setdefault(pool, fresh.predictions.outputs["pooled"])
    assert fingerprints["avg"] != fingerprints["max"]
    assert not np.array_equal(outputs["avg"], outputs["max"])


@pytest.mark.parametrize("task_name", ["classification", "video", "segmentation"])
def test_readme_zoo_files_are_valid(task_name, tmp_path):
    """The README's zoo file of each task reads without an error (fields, bases, preprocessing)."""
    import re

    from tests.conftest import REPO

    text = (REPO / "README.md").read_text()
    block = re.search(rf"<!-- zoo-file: {task_name} -->\n```yaml\n(.*?)```\n<!-- end: zoo-file: {task_name} -->",
                      text, re.S)
    assert block, f"README has no zoo file for {task_name}"
    path = tmp_path / "zoo.yaml"
    path.write_text(block.group(1))
    task = get_task(task_name)
    task.add_zoo_file(path)
    import yaml

    names = [m["name"] for m in yaml.safe_load(block.group(1))["models"]]
    assert names and all(task.model_entry(n).num_classes > 0 for n in names)


def test_real_camvid_models_through_the_example_zoo_file(shared_data):
    """The README's CamVid example on real data: ESPNet (plain state dict, void channel dropped)
    and CGNet ({'model': ...}, outputs at 1/8) from examples/camvid/zoo.yaml on the folder layout
    give, image by image, the intersection/union statistics of the independent numpy script
    examples/camvid/check_published.py (a few images here; the README gives the full test set)."""
    pytest.importorskip("mmseg", reason="the segmentation task needs the segmentation extra")
    import importlib.util
    import sys

    from PIL import Image

    from tests.conftest import REPO

    camvid = shared_data / "camvid"
    if not (camvid / "test").is_dir() or not (shared_data / "camvid-models").is_dir():
        pytest.skip(f"CamVid or its models not found under {shared_data}")
    spec = importlib.util.spec_from_file_location("check_published", REPO / "examples/camvid/check_published.py")
    script = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(REPO / "examples/camvid"))
    try:
        spec.loader.exec_module(script)
        reference_models = script.load_models(shared_data / "camvid-models")
    finally:
        sys.path.remove(str(REPO / "examples/camvid"))
    task = get_task("segmentation")
    task.add_zoo_file(REPO / "examples/camvid/zoo.yaml")
    names = "Sky,Building,Pole,Road,Pavement,Tree,SignSymbol,Fence,Car,Pedestrian,Bicyclist"
    dataset = task.build_dataset("folder", camvid, images="test", labels="testannot", ignore_index=11,
                                 classes=names.split(","))
    pool = Pool.evaluate(["espnet_camvid", "cgnet_camvid"], dataset, task, limit=3, options=OPTIONS,
                         weights_dir=shared_data / "camvid-models")
    ids = pool.predictions.ids
    rgb = [np.asarray(Image.open(camvid / sid).convert("RGB")) for sid in ids]
    labels = np.stack([np.asarray(Image.open(camvid / "testannot" / Path(sid).name)) for sid in ids]).astype(np.int64)
    labels[labels == 11] = 255
    with torch.no_grad():
        for member, reference in (("espnet_camvid", "espnet"), ("cgnet_camvid", "cgnet")):
            predicted = script.predict(reference, reference_models[reference], rgb)["clean"]
            one_hot = np.eye(CLASSES_CAMVID)[predicted].transpose(0, 3, 1, 2)
            # the same pixels up to float rounding at a few argmax ties (the script computes in its own order)
            np.testing.assert_allclose(pool.score(member).sample_statistics, _iou_statistics(one_hot, labels, 11),
                                       atol=1e-4 * labels[0].size)


CLASSES_CAMVID = 11


def test_a_module_in_memory_declares_its_input_size_and_other_sizes_are_refused():
    """A convnet with global pooling runs at any size: without input_size= a 64x64 batch for a card
    fitted at 32x32 would run silently at other exits and MACs."""
    from committee_tasks import ArrayDataset, Cascade, Member, Pool, load_committee

    def net(seed):
        torch.manual_seed(seed)
        return torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
                                   torch.nn.Linear(4, 3))

    small, large = (Member.from_module(net(s), name=n, input_size=(3, 16, 16)) for s, n in ((0, "small"), (1, "big")))
    rng = np.random.default_rng(0)
    x = rng.normal(size=(12, 3, 16, 16)).astype(np.float32)
    pool = Pool.evaluate([small, large], ArrayDataset(x, rng.integers(0, 3, 12)), options=OPTIONS)
    committee = load_committee(pool.card(Cascade(["small", "big"], [0.5])), members=[small, large])
    committee(torch.from_numpy(x))
    with pytest.raises(CommitteeError, match=r"each input has shape \(3, 32, 32\) but small, big take \(3, 16, 16\)"):
        committee(torch.randn(2, 3, 32, 32))
    with pytest.raises(CommitteeError, match=r"no sample of .* could be read \(4 skipped\)"):  # each skipped: wrong size
        Pool.evaluate([small, large], ArrayDataset(rng.normal(size=(4, 3, 32, 32)).astype(np.float32),
                                                   np.zeros(4, dtype=int)), options=OPTIONS)
    with pytest.raises(CommitteeError, match=r"input_size \(16, 16\) of 'x': give an image member's"):
        Member.from_module(net(0), name="x", input_size=(16, 16))


def test_a_module_made_for_one_task_is_refused_by_a_pool_of_another():
    """Member.from_module defaults to classification (softmax): in a pool of another task it ran
    with softmax instead of that task's to_probs, and shared its cache key with the right one."""
    from committee_tasks import ArrayDataset, Member, Pool

    torch.manual_seed(0)
    net = torch.nn.Conv2d(3, 4, 1)
    data = ArrayDataset(np.zeros((2, 3, 8, 8), dtype=np.float32), np.zeros((2, 8, 8), dtype=np.int64))
    with pytest.raises(CommitteeError, match=r"member 'seg' was made for task 'classification'.*"
                                             r"Member.from_module\(\.\.\., task='segmentation'\)"):
        Pool.evaluate([Member.from_module(net, name="seg", num_classes=4)], data, task="segmentation", options=OPTIONS)
    right = Member.from_module(net, name="seg", num_classes=4, task="segmentation")
    assert right.fingerprint != Member.from_module(net, name="seg", num_classes=4).fingerprint
    assert list(Pool.evaluate([right], data, task="segmentation", options=OPTIONS).predictions.ids) == ["0", "1"]
