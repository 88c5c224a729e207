"""Image preprocessing split into a host part (uint8 pixels) and a device part (float, normalise):
the members must see the same inputs bit for bit as from the whole transform, in the loop too."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision import transforms as v1
from torchvision.models import ResNet18_Weights
from torchvision.transforms import v2

from committee_tasks import ArrayDataset, LoopOptions, Member, PredictionCache, evaluate_pool
from committee_tasks.core.device_preprocessing import split_for_device
from committee_tasks.core.errors import CommitteeError
from committee_tasks.core.image_preprocessing import ImagePreprocessing
from committee_tasks.core.registry import get_task
from committee_tasks.engine import loop as loop_module
from committee_tasks_builtin.classification.zoo import cifar_transform

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def images(count: int = 4, size=(40, 30), seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (*size, 3), dtype=np.uint8) for _ in range(count)]


SPLIT = {
    "ImagePreprocessing (zoo files, timm)": lambda: ImagePreprocessing(resize=36, crop=32, mean=MEAN, std=STD),
    "ImagePreprocessing BGR, 0..255 statistics": lambda: ImagePreprocessing(
        crop=(24, 20), mean=(104.0, 117.0, 123.0), std=(57.0, 57.0, 58.0), scale=1.0, channels="BGR"),
    "torchvision weights preset": lambda: ResNet18_Weights.IMAGENET1K_V1.transforms(crop_size=32, resize_size=36),
    "CIFAR's v2 Compose": cifar_transform,
    "v1 Compose": lambda: v1.Compose([v1.PILToTensor(), v1.CenterCrop(28), v1.ConvertImageDtype(torch.float32),
                                      v1.Normalize(MEAN, STD)]),
}


TAKES_NO = {("torchvision weights preset", "array"), ("v1 Compose", "array"), ("v1 Compose", "tensor")}  # nor whole


@pytest.mark.parametrize("name, kind", [(n, k) for n in SPLIT for k in ("PIL", "array", "tensor")
                                        if (n, k) not in TAKES_NO])
def test_the_split_gives_the_whole_transforms_inputs_bit_for_bit(name, kind):
    whole = SPLIT[name]()
    split = split_for_device(whole)
    assert split is not None
    raw = images()
    if kind == "PIL":
        raw = [Image.fromarray(a) for a in raw]
    elif kind == "tensor":
        raw = [torch.from_numpy(a).permute(2, 0, 1).contiguous() for a in raw]
    expected = torch.stack([whole(x) for x in raw])
    pixels = torch.stack([split.host(x) for x in raw])
    assert pixels.dtype == torch.uint8 and type(pixels) is torch.Tensor  # a quarter of float32's bytes
    assert torch.equal(split.device(pixels), expected)


@pytest.mark.parametrize("transform", [
    v1.Compose([v1.ToTensor(), v1.Normalize(MEAN, STD)]),  # ToTensor converts per image: not split
    v2.Compose([v2.ToImage(), v2.ToDtype(torch.float32, scale=True), v2.RandomHorizontalFlip(),
                v2.Normalize(MEAN, STD)]),  # a step after the conversion that is not elementwise
    v2.Compose([v2.ToImage(), v2.ToDtype(torch.float32, scale=False), v2.Normalize(MEAN, STD)]),  # unscaled
    v2.Compose([v2.ToImage(), v2.ToDtype(torch.float32, scale=True), v2.Normalize(MEAN, STD, inplace=True)]),
    lambda image: torch.zeros(3, 8, 8),
], ids=["ToTensor", "flip-after", "unscaled", "inplace", "lambda"])
def test_other_transforms_run_whole_on_the_host(transform):
    assert split_for_device(transform) is None


def cifar_members() -> list[Member]:
    from committee_tasks_builtin.classification.cifar_resnet import CifarResNet

    torch.manual_seed(0)
    return [Member.from_module(CifarResNet(depth).eval(), transform=cifar_transform(), name=f"resnet{depth}",
                               num_classes=10) for depth in (8, 14)]


def test_the_loop_copies_pixels_and_caches_the_same_outputs(tmp_path, monkeypatch):
    raw = np.stack(images(24, size=(32, 32), seed=1))
    data = ArrayDataset(raw, np.arange(24) % 10, name="pixels")
    copied = []
    real_to_device = loop_module.to_device
    monkeypatch.setattr(loop_module, "to_device", lambda x, device: copied.append(x.dtype) or real_to_device(x, device))
    outputs = {}
    for setting in ("off", "on"):
        options = LoopOptions(batch_size=8, num_workers=0, progress=False, device="cpu", output_dtype="float32",
                              device_preprocessing=setting)
        preds, _ = evaluate_pool(get_task("classification"), cifar_members(), data, PredictionCache(tmp_path / setting),
                                 options=options)
        outputs[setting] = preds.outputs
    assert copied == [torch.float32] * 3 + [torch.uint8] * 3  # 3 batches, one copy each shared by both members
    for name in outputs["off"]:
        assert np.array_equal(outputs["on"][name], outputs["off"][name])
    keys = sorted(p.name for p in (tmp_path / "on").rglob("resnet*"))
    assert keys == sorted(p.name for p in (tmp_path / "off").rglob("resnet*"))  # one cache key either way


def test_a_bad_setting_is_refused(tmp_path):
    options = LoopOptions(batch_size=8, num_workers=0, progress=False, device="cpu", device_preprocessing="yes")
    with pytest.raises(CommitteeError, match="device_preprocessing 'yes': choose one of auto, on, off"):
        evaluate_pool(get_task("classification"), cifar_members(), ArrayDataset(np.stack(images(8, (32, 32))),
                      np.zeros(8, dtype=int)), PredictionCache(tmp_path), options=options)


def test_a_loaded_committee_takes_pixels_and_converts_them_as_the_loop_does():
    from committee_tasks import Cascade, Pool, load_committee
    from committee_tasks.api.options import ExecutionOptions

    members = cifar_members()
    raw = np.stack(images(16, size=(32, 32), seed=2))
    pool = Pool.evaluate(members, ArrayDataset(raw, np.arange(16) % 10), options=ExecutionOptions(
        cache_dir="memory", progress=False, output_dtype="float32"))
    committee = load_committee(pool.card(Cascade(["resnet8", "resnet14"], [0.15])), members=members, device="cpu")
    pixels = torch.from_numpy(raw).permute(0, 3, 1, 2).contiguous()  # what v2.ToImage makes of decoded images
    preprocessed = torch.stack([cifar_transform()(image) for image in raw])
    from_pixels, from_floats = committee(pixels), committee(preprocessed)
    assert torch.equal(from_pixels.probs, from_floats.probs) and torch.equal(from_pixels.exit_stage,
                                                                             from_floats.exit_stage)
