"""A loaded committee in deployment: what it takes and refuses (`forward`, `predict_samples`), how
`predict_stream` sizes its batches, and the executor's checks of the batches it is given."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from committee_tasks import Cascade, CommitteeError, CommitteeExecutor, Ensemble, Member
from committee_tasks.committees.cards import CommitteeCard
from committee_tasks.core.image_preprocessing import ImagePreprocessing
from committee_tasks.engine.runnable import load_committee
from tests.test_executor import _linear_members

SIZE = 8  # the tiny image members take (3, 8, 8)
PREPROCESSING = ImagePreprocessing(mean=(0.5, 0.4, 0.3), std=(0.2, 0.25, 0.3))


def _image_member(name: str, seed: int) -> Member:
    """A tiny RGB convnet preprocessed as a zoo image member is (uint8 pixels, normalised on the
    device), recording the rows of every batch it runs on."""
    torch.manual_seed(seed)
    module = torch.nn.Sequential(torch.nn.Conv2d(3, 6, 3), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1),
                                 torch.nn.Flatten(), torch.nn.Linear(6, 5))
    member = Member.from_module(module, PREPROCESSING, name=name, input_size=(3, SIZE, SIZE))
    member.rows = []
    module.register_forward_pre_hook(lambda mod, inputs: member.rows.append(len(inputs[0])))
    return member


@pytest.fixture()
def image_members():
    return {name: _image_member(name, seed) for seed, name in enumerate(("a", "b"))}


def _loaded(committee, members):
    card = CommitteeCard.from_committee(committee, "classification", members)
    return load_committee(card, members=members, device="cpu")


def _pixels(count: int, seed: int = 0) -> torch.Tensor:
    """(count, 3, 8, 8) uint8 pixels, as `v2.ToImage` gives them."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (count, 3, SIZE, SIZE), dtype=torch.uint8, generator=generator)


# ---- predict_stream: the gathering size ---------------------------------------------------

def test_stream_gathers_at_the_largest_batch_not_the_first(classification):
    """A 1-row first batch (a warm-up request) used to set every stage's batch size for the whole
    stream: each later batch then ran one row at a time. The first stage runs each batch as it
    came; later stages gather up to the largest batch seen."""
    members, rows = _linear_members(classification, {"a": torch.nn.Identity(), "b": torch.nn.Identity()})
    module = _loaded(Cascade(["a", "b"], 0.3), members)
    torch.manual_seed(3)
    key = module.input_keys[0]
    batches = [torch.randn(1, 1, 6)] + [torch.randn(n, 1, 6) for n in (64, 50, 64, 64, 64, 64)]
    for r in rows.values():
        r.clear()
    outs = list(module.predict_stream(batches))
    assert rows["a"] == [1, 64, 50, 64, 64, 64, 64]  # each batch as it came, none regrouped
    assert all(n == 64 for n in rows["b"][:-1]) and len(rows["b"]) < 5, rows["b"]  # gathered to 64 rows
    for out, batch in zip(outs, batches):
        expected = module({key: batch})
        np.testing.assert_array_equal(out.probs.numpy(), expected.probs.numpy())
        np.testing.assert_array_equal(out.exit_stage.numpy(), expected.exit_stage.numpy())


def test_stream_first_stage_does_not_wait_for_later_batches(classification):
    """A batch smaller than the first was held back at the first stage until later batches filled
    it (regrouped into rows of the first batch's size); now only later stages gather."""
    members, rows = _linear_members(classification, {"a": torch.nn.Identity(), "b": torch.nn.Identity()})
    module = _loaded(Cascade(["a", "b"], 0.3), members)
    torch.manual_seed(4)
    sizes = [32, 20, 20, 20]
    for r in rows.values():
        r.clear()
    outs = list(module.predict_stream([torch.randn(n, 1, 6) for n in sizes]))
    assert rows["a"] == sizes
    assert [len(o.exit_stage) for o in outs] == sizes


# ---- forward: shapes and dtypes checked first, each refusal naming its fix ------------------

@pytest.mark.parametrize("make, message", [
    (lambda x: x.permute(0, 2, 3, 1), r"got \(4, 8, 8, 3\): channels last; pass x.permute\(0, 3, 1, 2\)"),
    (lambda x: x[:, :1], r"got 1 channel\(s\) in \(4, 1, 8, 8\) but a, b take 3: .*x.expand\(-1, 3, -1, -1\)"),
    (lambda x: x[0], r"got one sample of shape \(3, 8, 8\), not a batch: add a batch dimension \(x.unsqueeze\(0\)\)"),
    (lambda x: x[0].float(), r"got one sample of shape \(3, 8, 8\), not a batch: add a batch dimension"),
    (lambda x: x.long(), r"a torch.int64 batch for .*: pass uint8 pixels \(x.to\(torch.uint8\)"),
    (lambda x: x > 100, r"a torch.bool batch for .*: pass uint8 pixels"),
    (lambda x: torch.nn.functional.interpolate(x.float(), scale_factor=2).to(torch.uint8),
     r"wrong size: each input has shape \(3, 16, 16\) but a, b take \(3, 8, 8\)"),
], ids=["channels-last", "one-channel", "unbatched-uint8", "unbatched-float", "int64", "bool", "wrong-size"])
def test_forward_refuses_batches_that_do_not_fit_naming_the_fix(image_members, make, message):
    module = _loaded(Cascade(["a", "b"], 0.3), image_members)
    pixels = _pixels(4)
    module(pixels)  # fits
    with pytest.raises(CommitteeError, match=message):
        module(make(pixels))


def test_predict_samples_wants_a_list(image_members):
    module = _loaded(Cascade(["a", "b"], 0.3), image_members)
    image = Image.fromarray(_pixels(1)[0].permute(1, 2, 0).numpy())
    with pytest.raises(CommitteeError, match=r"predict_samples takes a list of samples, got one Image: pass \[item\]"):
        module.predict_samples(image)
    assert len(module.predict_samples([image]).exit_stage) == 1


# ---- the executor: the loaded module's checks -----------------------------------------------

@pytest.mark.parametrize("later_stages", ["gathered", "per-batch"])
def test_executor_refuses_wrong_sizes_as_the_loaded_module_does(classification, image_members, later_stages):
    executor = CommitteeExecutor(Cascade(["a", "b"], 0.3), image_members, classification, device="cpu",
                                 later_stages=later_stages)
    key = image_members["a"].transform_key
    inputs = PREPROCESSING.normalise(_pixels(4))
    bigger = torch.nn.functional.interpolate(inputs, scale_factor=2)
    with pytest.raises(CommitteeError, match=r"batch 1 of 2 does not fit: wrong size: each input has shape "
                                             r"\(3, 16, 16\) but a, b take \(3, 8, 8\)"):
        executor.run([{key: inputs}, {key: bigger}], warmup=0)
    with pytest.raises(CommitteeError, match=r"batch 0 of 1 does not fit: got \(4, 8, 8, 3\): channels last"):
        executor.run_batch({key: inputs.permute(0, 2, 3, 1)})
    assert len(executor.run([{key: inputs}], warmup=0).exit_stage) == 4


@pytest.mark.parametrize("committee", [Cascade(["a", "b"], 0.3), Ensemble(["a", "b"])], ids=lambda c: c.name)
@pytest.mark.parametrize("later_stages", ["gathered", "per-batch"])
def test_executor_refuses_no_batches_and_empty_ones(classification, image_members, committee, later_stages):
    """No batches crashed inside (max() of nothing; unpacking nothing) and an empty batch gave
    combined=None even when outputs were kept: both are refused, saying so."""
    executor = CommitteeExecutor(committee, image_members, classification, device="cpu", later_stages=later_stages)
    key = image_members["a"].transform_key
    inputs = PREPROCESSING.normalise(_pixels(4))
    with pytest.raises(CommitteeError, match=r"no batches given: pass at least one"):
        executor.run([])
    with pytest.raises(CommitteeError, match=r"batch 1 of 2 is empty: pass batches of at least one sample"):
        executor.run([{key: inputs}, {key: inputs[:0]}], warmup=0)
    with pytest.raises(CommitteeError, match=r"batch 0 of 1 is a Tensor: pass a dict transform key -> batch"):
        executor.run([inputs], warmup=0)


# ---- predict_samples: decoded as the datasets decode, in batches ----------------------------

def _images(count: int) -> list[Image.Image]:
    return [Image.fromarray(x.permute(1, 2, 0).numpy()) for x in _pixels(count, seed=5)]


def test_predict_samples_decodes_images_as_the_datasets_do(image_members):
    """A palette image (PNG-8) was preprocessed as its palette indices (one channel, broadcast:
    silently wrong) and an RGBA one failed inside torch; the datasets decode both to RGB first."""
    module = _loaded(Ensemble(["a", "b"]), image_members)
    rgb = _images(6)
    palette = [im.convert("P", palette=Image.ADAPTIVE, colors=16) for im in rgb]
    rgba = [im.convert("RGBA") for im in rgb]
    gray = [im.convert("LA") for im in rgb]
    for images in (palette, rgba, gray):
        expected = module.predict_samples([im.convert("RGB") for im in images])
        got = module.predict_samples(images)
        torch.testing.assert_close(got.probs, expected.probs, rtol=0, atol=0)
    with pytest.raises(CommitteeError, match=r"sample 1 of 2: 32-bit floating-point image: its value range is not"):
        module.predict_samples([rgb[0], Image.fromarray(np.full((SIZE, SIZE), 0.5, np.float32))])


def test_predict_samples_reads_image_files_as_the_datasets_do(image_members, tmp_path):
    """A file path raised an AttributeError deep inside the preprocessing."""
    module = _loaded(Ensemble(["a", "b"]), image_members)
    images = _images(3)
    paths = []
    for i, image in enumerate(images):
        image.convert("P", palette=Image.ADAPTIVE, colors=16).save(tmp_path / f"{i}.png")
        paths.append(tmp_path / f"{i}.png")
    expected = module.predict_samples([Image.open(p).convert("RGB") for p in paths])
    for given in (paths, [str(p) for p in paths]):
        torch.testing.assert_close(module.predict_samples(given).probs, expected.probs, rtol=0, atol=0)
    (tmp_path / "broken.png").write_bytes(b"not an image")
    with pytest.raises(CommitteeError, match=r"sample 1 of 2: cannot read the image '.*broken.png'"):
        module.predict_samples([paths[0], tmp_path / "broken.png"])


def test_predict_samples_runs_in_batches_with_the_same_results(image_members):
    """All samples ran as one batch (5,000 images: 2.5 GB); now ``batch_size`` at a time."""
    module = _loaded(Cascade(["a", "b"], 0.3), image_members)
    module.predict_samples(_images(1))  # the members count their MACs (a 1-row run each)
    image_members["a"].rows.clear()
    module.predict_samples(_images(130))
    assert image_members["a"].rows == [128, 2]  # the evaluation loop's default batch size
    images = _images(10)
    whole = module.predict_samples(images, batch_size=10)
    for member in image_members.values():
        member.rows.clear()
    chunked = module.predict_samples(images, batch_size=4)
    assert image_members["a"].rows == [4, 4, 2]
    torch.testing.assert_close(chunked.probs, whole.probs, rtol=0, atol=0)
    np.testing.assert_array_equal(chunked.exit_stage.numpy(), whole.exit_stage.numpy())
    np.testing.assert_array_equal(chunked.macs.numpy(), whole.macs.numpy())
    for wrong in (0, 2.5, True):
        with pytest.raises(CommitteeError, match=r"batch_size .*: pass a positive number of samples"):
            module.predict_samples(images, batch_size=wrong)


# ---- non-finite inputs: refused, naming the samples ------------------------------------------

@pytest.mark.parametrize("committee", [Cascade(["a", "b"], 0.3), Ensemble(["a", "b"])], ids=lambda c: c.name)
def test_non_finite_inputs_are_refused_naming_the_samples(image_members, committee):
    """NaN inputs gave NaN probabilities, class 0, every sample at the last stage, silently."""
    module = _loaded(committee, image_members)
    inputs = PREPROCESSING.normalise(_pixels(6))
    inputs[2, 0, 3, 3] = float("nan")
    inputs[4, 1] = float("inf")
    message = r"samples \[2, 4\] of {} \(2 in a batch of 6\) got NaN or inf committee outputs: {}"
    with pytest.raises(CommitteeError, match=message.format("the batch", "their inputs hold NaN or inf values")):
        module(inputs)
    with pytest.raises(CommitteeError, match=message.format("batch 1 of the stream", "check the inputs for NaN")):
        list(module.predict_stream([PREPROCESSING.normalise(_pixels(3)), inputs]))
    module(torch.where(torch.isfinite(inputs), inputs, 0.0))  # finite: runs


def test_float_pixels_given_as_if_normalised_are_refused(image_members):
    """Float pixels 0..255 passed to forward ran and predicted garbage (agreement 0.25 with the
    right inputs); a normalising preprocessing never gives such values."""
    module = _loaded(Ensemble(["a", "b"]), image_members)
    pixels = _pixels(4)
    expected = module(pixels).probs
    with pytest.raises(CommitteeError, match=r"float batch for .* with values 0\.\.255, where its members' "
                                             r"preprocessing gives -2\.5\.\.2\.5 \(normalised\): pass uint8 pixels"):
        module(pixels.float())
    from committee_tasks.core.device_preprocessing import split_for_device

    normalised = split_for_device(PREPROCESSING).device(pixels)  # what the loop gives the members
    torch.testing.assert_close(module(normalised).probs, expected, rtol=0, atol=0)
    assert module(normalised * 1.1).probs.shape == expected.shape  # near the range (resizing overshoots): taken


@pytest.mark.parametrize("resize", [None, 10])
def test_images_in_the_other_channel_order_are_refused_naming_the_fix(image_members, resize):
    """A (C, H, W) array or an (H, W, C) tensor failed inside the resize ("The size of tensor a (40)
    must match the size of tensor b (3)")."""
    preprocessing = ImagePreprocessing(resize=resize, crop=SIZE, mean=PREPROCESSING.mean, std=PREPROCESSING.std)
    hwc = np.asarray(_images(1)[0])
    expected = preprocessing(hwc)
    torch.testing.assert_close(preprocessing(torch.from_numpy(hwc).permute(2, 0, 1)), expected)  # (C, H, W) tensor
    with pytest.raises(CommitteeError, match=r"array of shape \(3, 8, 8\) is channels first: .* image.transpose"):
        preprocessing(hwc.transpose(2, 0, 1))
    with pytest.raises(CommitteeError, match=r"tensor of shape \(8, 8, 3\) is channels last: .* image.permute"):
        preprocessing(torch.from_numpy(hwc))
    module = _loaded(Ensemble(["a", "b"]), image_members)
    with pytest.raises(CommitteeError, match="sample 0 of 1: .*channels first"):
        module.predict_samples([hwc.transpose(2, 0, 1)])
