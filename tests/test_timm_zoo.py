"""timm's zoo in the classification task: the shipped index against the installed timm, listing
without importing timm, preprocessing equal to timm's own eval transform, MACs against published
figures, weights found in --weights-dir or the Hugging Face cache, and the offline error (all
offline, CPU; models built with random weights)."""
from __future__ import annotations

import hashlib
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from committee_tasks.core import zoo_index
from committee_tasks.core.errors import CommitteeError
from committee_tasks.core.macs import count_macs
from committee_tasks.core.registry import get_task
from committee_tasks.core.zoo import WeightsUnavailableError, resolve_weights
from tests.conftest import REPO, SHARED_DATA
from tests.test_listing_speed import SECONDS, run_listing

timm = pytest.importorskip("timm")

SMALL = "timm/test_resnet.r160_in1k"  # timm's own tiny test model (160 px, 0.5 mean/std, bilinear)


@pytest.fixture(scope="module")
def zoo():
    return get_task("classification").entries()


@pytest.fixture
def hf_cache(tmp_path, monkeypatch):
    """An empty Hugging Face cache, offline, with an unreachable endpoint: nothing can be fetched."""
    import huggingface_hub.constants

    cache = tmp_path / "hf_hub"
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    # huggingface_hub reads these at import (timm imports it): set its constants too
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "ENDPOINT", "http://127.0.0.1:9")
    return cache


# ---- the index ----------------------------------------------------------------------------
def test_timm_index_is_current():
    from committee_tasks_builtin.classification.timm_index import INDEX

    assert INDEX.drift() is None


def test_zoo_has_every_pretrained_classifier_with_its_config(zoo, monkeypatch):
    from timm.data import resolve_data_config
    from timm.models import get_pretrained_cfg

    from committee_tasks_builtin.classification.timm_index import timm_entries

    expected = {f"timm/{n}" for n in timm.list_pretrained() if get_pretrained_cfg(n).num_classes}
    assert len(expected) > 1000 and {n for n in zoo if n.startswith("timm/")} == expected
    assert "timm/convnext_tiny.fb_in1k" in expected
    assert "timm/resnet50.fb_ssl_yfcc100m_ft_in1k" in expected and "timm/vit_base_patch14_dinov2.lvd142m" not in zoo
    for name in sorted(expected):
        cfg = get_pretrained_cfg(name[5:]).to_dict()
        entry, data = zoo[name], resolve_data_config({}, pretrained_cfg=cfg)
        assert entry.num_classes == cfg["num_classes"] and entry.input_size == tuple(data["input_size"]), name
        assert entry.builder.target == "timm:create_model" and entry.builder.args == (name[5:],), name
        assert dict(entry.builder.kwargs) == {"pretrained": False, "num_classes": cfg["num_classes"]}, name
        kwargs = dict(entry.preprocessing.kwargs)
        assert {k: kwargs[k] for k in ("crop_pct", "crop_mode", "interpolation")} == {
            k: data[k] for k in ("crop_pct", "crop_mode", "interpolation")}, name
        assert kwargs["mean"] == tuple(data["mean"]) and kwargs["std"] == tuple(data["std"]), name
        assert entry.source == f"timm {name[5:]} ({cfg.get('license') or 'licence not given'})"
        assert entry.macs is None and entry.metrics == {} and entry.weights.sha256 is None
    # read from the package itself (another timm version installed): the same entries
    monkeypatch.setattr(zoo_index, "installed_version", lambda name: "another version")
    assert timm_entries() == {n: e for n, e in zoo.items() if n.startswith("timm/")}


def test_weights_come_from_the_hub_repository_or_the_published_url(zoo):
    hub = zoo["timm/convnext_tiny.fb_in1k"].weights
    assert hub.file_name == "convnext_tiny.fb_in1k.safetensors" and hub.url is None  # timm prefers the hub
    assert hub.fetch.args == ("timm/convnext_tiny.fb_in1k", ("model.safetensors", "pytorch_model.bin"))
    url_only = zoo["timm/legacy_seresnet18.in1k"].weights
    assert url_only.fetch is None and url_only.url.endswith("/" + url_only.file_name)


# ---- listing ------------------------------------------------------------------------------
def test_listing_a_pattern_imports_no_timm_and_is_fast():
    names = get_task("classification").list_models("timm/*convnext*")
    assert "timm/convnext_tiny.fb_in1k" in names and "timm/convnextv2_nano.fcmae_ft_in22k_in1k" in names
    assert all(n.startswith("timm/") and "convnext" in n for n in names) and names == sorted(names)
    report, seconds = run_listing("--list-models", "timm/*convnext*")
    assert report["code"] == 0 and report["heavy"] == [] and seconds < SECONDS
    assert [line.split()[0] for line in report["out"].splitlines()] == names
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "tools/eval.py", "--list-models", "timm/*convnext*"], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert time.perf_counter() - start < 2 * SECONDS
    line = next(line for line in done.stdout.splitlines() if line.split()[0] == "timm/convnext_tiny.fb_in1k")
    assert "imagenet" in line and "at 3x224x224" in line


# ---- preprocessing ------------------------------------------------------------------------
def _images() -> list[Image.Image]:
    """A synthetic non-square image, and real ones when ../shared/data is there."""
    rng = np.random.default_rng(0)
    images = [Image.fromarray(rng.integers(0, 256, (251, 317, 3), dtype=np.uint8))]
    camvid = sorted((SHARED_DATA / "camvid" / "test").glob("*.png"))[:2]
    images += [Image.open(path).convert("RGB") for path in camvid]  # 960x720 street scenes
    if (SHARED_DATA / "cifar10-test.npz").is_file():
        images.append(Image.fromarray(np.load(SHARED_DATA / "cifar10-test.npz")["images"][0]))  # 32x32: upscaled
    return images


@pytest.mark.parametrize("name", [
    "convnext_tiny.fb_in1k",  # centre crop 0.875, bicubic
    "test_resnet.r160_in1k",  # bilinear, mean/std 0.5
    "dm_nfnet_f0.dm_in1k",  # squash 0.9
    "vit_base_patch16_clip_384.openai_ft_in12k_in1k",  # squash 0.95, CLIP mean/std
    "volo_d4_448.sail_in1k",  # crop_pct 1.15: the resized image is padded to the crop
])
def test_preprocessing_equals_timms_eval_transform(zoo, name):
    with torch.device("meta"):  # the config only: no weights allocated
        model = timm.create_model(name, pretrained=False)
    reference = timm.data.create_transform(**timm.data.resolve_data_config({}, model=model))
    ours = zoo[f"timm/{name}"].preprocessing()
    assert repr(ours) == repr(zoo[f"timm/{name}"].preprocessing()) and " at 0x" not in repr(ours)
    for image in _images():
        # same pixels; float rounding of the scaling and normalisation only (one grey level is ~0.017)
        torch.testing.assert_close(ours(image), reference(image), rtol=0, atol=2e-6)


def test_unsupported_crop_mode_is_refused_clearly():
    from committee_tasks_builtin.classification.timm_members import timm_eval_transform

    with pytest.raises(CommitteeError, match="crop_mode 'border' is not supported"):
        timm_eval_transform((3, 224, 224), 1.0, "border", "bicubic", (0.5,) * 3, (0.5,) * 3)
    with pytest.raises(CommitteeError, match="interpolation 'cubic'"):
        timm_eval_transform((3, 224, 224), 1.0, "center", "cubic", (0.5,) * 3, (0.5,) * 3)


# ---- MACs ---------------------------------------------------------------------------------
# Published multiply-adds at the config's input size (papers count MACs and call them FLOPs):
PUBLISHED_MACS = {
    "timm/resnet50.a1_in1k": 4.1e9,  # timm's model card huggingface.co/timm/resnet50.a1_in1k: "GMACs: 4.1"
    "timm/convnext_tiny.fb_in1k": 4.5e9,  # ConvNeXt paper (Liu et al. 2022), Table 1: ConvNeXt-T 4.5G FLOPs
    "timm/efficientnet_b0.ra_in1k": 0.39e9,  # EfficientNet paper (Tan & Le 2019), Table 2: B0 0.39B FLOPS
    "timm/deit_small_patch16_224.fb_in1k": 4.6e9,  # DeiT paper (Touvron et al. 2021), Table 1: DeiT-S 4.6 GFLOPs
}


@pytest.mark.parametrize("name", sorted(PUBLISHED_MACS))
def test_counted_macs_match_published(zoo, name):
    entry = zoo[name]
    # MACs depend on shapes only: the CNNs run on the meta device (no weights, fast); DeiT runs on
    # the CPU, where attention takes the fused CPU kernel the counter needs its own formula for
    device = torch.device("cpu" if "deit" in name else "meta")
    with device:
        model = entry.builder().eval()
    x = torch.zeros(1, *entry.input_size, device=device)
    counted = count_macs(model, x)
    assert counted == pytest.approx(PUBLISHED_MACS[name], rel=0.02), f"{name}: counted {counted}"
    if "deit" in name:  # attention runs in F.scaled_dot_product_attention: counted like explicit matmuls
        assert model.blocks[0].attn.fused_attn
        for block in model.blocks:
            block.attn.fused_attn = False  # timm's own q @ k.T, softmax, @ v
        assert count_macs(model, x) == counted


# ---- weights ------------------------------------------------------------------------------
def _reference_and_state(name: str) -> tuple[torch.nn.Module, dict[str, torch.Tensor]]:
    torch.manual_seed(0)
    model = timm.create_model(name[5:], pretrained=False).eval()
    return model, {k: v.clone().contiguous() for k, v in model.state_dict().items()}


def _assert_member_equals_timm(member, reference, digest: str):
    image = _images()[0]
    reference_input = timm.data.create_transform(**timm.data.resolve_data_config({}, model=reference))(image)
    x = member.transform(image).unsqueeze(0)
    torch.testing.assert_close(x, reference_input.unsqueeze(0), rtol=0, atol=2e-6)
    with torch.no_grad():
        torch.testing.assert_close(member.module(x), reference(x), rtol=0, atol=0)
    assert member.weights_sha256 == digest and member.num_classes == 1000


def test_member_from_a_weights_dir_file_equals_timms_model(tmp_path, hf_cache):
    from safetensors.torch import save_file

    task = get_task("classification")
    reference, state = _reference_and_state(SMALL)
    path = tmp_path / "weights" / "test_resnet.r160_in1k.safetensors"
    path.parent.mkdir()
    save_file(state, str(path))
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    assert task.describe_member(SMALL, path.parent).weights_sha256 == digest
    _assert_member_equals_timm(task.build_member(SMALL, path.parent), reference, digest)
    # the folder huggingface-cli download --local-dir writes, with the pickled format
    folder = tmp_path / "weights2" / "test_resnet.r160_in1k"
    folder.mkdir(parents=True)
    torch.save(state, folder / "pytorch_model.bin")
    digest = hashlib.sha256((folder / "pytorch_model.bin").read_bytes()).hexdigest()
    _assert_member_equals_timm(task.build_member(SMALL, folder.parent), reference, digest)


def test_member_from_the_hugging_face_cache(hf_cache):
    from safetensors.torch import save_file

    task = get_task("classification")
    reference, state = _reference_and_state(SMALL)
    repo = hf_cache / "models--timm--test_resnet.r160_in1k"
    older = {k: v + 1 for k, v in state.items()}
    for revision, weights in (("0000old", older), ("abc123", state)):  # refs/main names the snapshot used
        (repo / "snapshots" / revision).mkdir(parents=True)
        save_file(weights, str(repo / "snapshots" / revision / "model.safetensors"))
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("abc123")
    path = repo / "snapshots" / "abc123" / "model.safetensors"
    assert resolve_weights(task.model_entry(SMALL).weights)[0] == path
    _assert_member_equals_timm(task.build_member(SMALL), reference, hashlib.sha256(path.read_bytes()).hexdigest())


def test_offline_without_the_file_names_it_and_the_folders(tmp_path, hf_cache):
    task = get_task("classification")
    weights_dir = tmp_path / "my_weights"
    with pytest.raises(WeightsUnavailableError) as info:
        task.describe_member("timm/convnext_tiny.fb_in1k", weights_dir)
    message = str(info.value)
    assert "'convnext_tiny.fb_in1k.safetensors'" in message and "Offline?" in message
    assert str(weights_dir / "convnext_tiny.fb_in1k.safetensors") in message
    assert str(weights_dir / "convnext_tiny.fb_in1k" / "model.safetensors") in message
    assert str(hf_cache) in message and "timm/convnext_tiny.fb_in1k" in message and "--weights-dir" in message
    assert not (hf_cache / "models--timm--convnext_tiny.fb_in1k" / "snapshots").exists()


def test_offline_without_a_weights_dir_says_how_one_would_hold_the_file(hf_cache):
    with pytest.raises(WeightsUnavailableError) as info:
        get_task("classification").describe_member("timm/convnext_tiny.fb_in1k", None)
    message = str(info.value)
    assert ("--weights-dir DIR holding it as DIR/convnext_tiny.fb_in1k.safetensors or "
            "DIR/convnext_tiny.fb_in1k/model.safetensors") in message
    assert "HF_HUB_OFFLINE=1" in message and "huggingface-cli download timm/convnext_tiny.fb_in1k" in message


def test_a_host_that_does_not_resolve_fails_at_once(tmp_path, hf_cache, monkeypatch):
    """No network and no proxy: said at once, not after huggingface_hub's ~30 s of retries."""
    import socket

    import huggingface_hub

    def no_dns(*args, **kwargs):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    def must_not_download(*args, **kwargs):
        raise AssertionError("hf_hub_download was called")

    monkeypatch.delenv("HF_HUB_OFFLINE")
    for proxy in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(proxy, raising=False)
    monkeypatch.setenv("HF_ENDPOINT", "https://hub.invalid")
    monkeypatch.setattr(socket, "getaddrinfo", no_dns)
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", must_not_download)
    with pytest.raises(WeightsUnavailableError, match=r"hub.invalid does not resolve \(Name or service not known\)"):
        get_task("classification").describe_member("timm/convnext_tiny.fb_in1k", tmp_path / "w")
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.invalid:3128")  # a proxy resolves names itself: tried
    with pytest.raises(WeightsUnavailableError, match="hf_hub_download was called"):
        get_task("classification").describe_member("timm/convnext_tiny.fb_in1k", tmp_path / "w")


def test_wrong_architecture_file_is_a_clear_error(tmp_path, hf_cache):
    from safetensors.torch import save_file

    weights_dir = tmp_path / "weights"
    weights_dir.mkdir()
    save_file({"w": torch.zeros(2)}, str(weights_dir / "test_resnet.r160_in1k.safetensors"))
    with pytest.raises(CommitteeError, match="test_resnet.r160_in1k"):
        get_task("classification").build_member(SMALL, weights_dir)


def test_url_only_weights_are_looked_up_in_the_torch_hub_cache(zoo, tmp_path):
    source = zoo["timm/legacy_seresnet18.in1k"].weights
    cached = Path(torch.hub.get_dir()) / "checkpoints" / source.file_name
    cached.parent.mkdir(parents=True, exist_ok=True)
    cached.write_bytes(b"not really weights")
    try:
        assert resolve_weights(source, tmp_path) == (cached, hashlib.sha256(b"not really weights").hexdigest())
    finally:
        cached.unlink()


def test_timm_members_in_an_evaluation_end_to_end(tmp_path, hf_cache):
    """tools/eval.py's main on a small ImageNet-layout folder: a cascade and an ensemble of two
    timm members whose (random) weights sit in --weights-dir."""
    import json

    from safetensors.torch import save_file

    from committee_tasks.cli.eval import main
    from tests.test_imagenet import CLASS_LIST_WNIDS, class_folders

    members = [SMALL, "timm/test_vit.r160_in1k"]
    weights_dir, out = tmp_path / "weights", tmp_path / "out"
    weights_dir.mkdir(), out.mkdir()
    for name in members:
        save_file(_reference_and_state(name)[1], str(weights_dir / f"{name[5:]}.safetensors"))
    class_folders(tmp_path / "imagenet" / "val")
    (out / "classes.txt").write_text("\n".join(CLASS_LIST_WNIDS) + "\n")
    assert main(["--task", "classification", "--dataset", "imagenet", "--data-root", str(tmp_path / "imagenet"),
                 "--data-option", f"class_list={out / 'classes.txt'}", "--weights-dir", str(weights_dir),
                 "--cascade", ",".join(members), "--thresholds", "0.5", "--ensemble", ",".join(members),
                 "--cache-dir", str(tmp_path / "cache"), "--workers", "0", "--batch-size", "4",
                 "--measure-samples", "0", "--no-progress", "--json", str(out / "out.json")]) == 0
    rows = {r["name"]: r for r in json.loads((out / "out.json").read_text())["rows"]}
    for name in members:
        entry = get_task("classification").model_entry(name)
        with torch.device("meta"):
            expected = count_macs(entry.builder(), torch.zeros(1, *entry.input_size, device="meta"))
        assert rows[name]["macs_mean"] == expected > 0 and rows[name]["published"]["macs"] is None
        assert rows[name]["published"]["source"] == f"timm {name[5:]} (apache-2.0)"
    assert {r["kind"] for r in rows.values()} == {"member", "ensemble", "cascade"}
