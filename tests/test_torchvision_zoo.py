"""The classification zoo against torchvision's own weights API and published figures, the CIFAR
ResNets' sizes, and how weight files are found, checked and reported missing (all offline, CPU)."""
from __future__ import annotations

import hashlib
import warnings
from pathlib import Path

import pytest
import torch
import torchvision
from torchvision.models._api import WeightsEnum

from committee_tasks.core.errors import UnknownNameError
from committee_tasks.core.macs import count_macs
from committee_tasks.core.registry import get_task
from committee_tasks.core.zoo import WeightsSource, WeightsUnavailableError, resolve_weights


@pytest.fixture(scope="module")
def zoo():
    return get_task("classification").zoo()


def _all_weights():
    """(zoo name, torchvision weights) for every model and every classification weights of it."""
    pairs = []
    for model in torchvision.models.list_models(module=torchvision.models):
        enum = torchvision.models.get_model_weights(model)
        pairs.append((model, enum.DEFAULT))
        for weights in enum:
            if weights.meta.get("categories") is not None:  # vgg16 IMAGENET1K_FEATURES has no classifier
                pairs.append((f"{model}.{weights.name.lower()}", weights))
    return pairs


# ---- MACs: our counter against torchvision's published meta['_ops'] --------------------------
@pytest.mark.parametrize("name", ["vit_b_16", "swin_t", "mobilenet_v3_small", "efficientnet_b0", "resnet18",
                                  "convnext_tiny"])
def test_counted_macs_match_torchvision_published(zoo, name):
    entry = zoo[name]
    weights = torchvision.models.get_model_weights(name).DEFAULT
    assert entry.macs == round(weights.meta["_ops"] * 1e9)
    model = entry.builder().eval()
    counted = count_macs(model, torch.zeros(1, *entry.input_size))
    assert counted == pytest.approx(entry.macs, rel=0.02), f"{name}: counted {counted}, published {entry.macs}"
    assert sum(p.numel() for p in model.parameters()) == entry.params == weights.meta["num_params"]


# ---- coverage: every torchvision classification model, figures from its weights API -----------
def test_zoo_covers_every_torchvision_classification_model(zoo):
    names = torchvision.models.list_models(module=torchvision.models)
    assert len(names) >= 80  # torchvision 0.29: 80 classification models
    missing = [n for n in names if n not in zoo]
    assert not missing


def test_entries_come_from_the_weights_api(zoo):
    pairs = _all_weights()
    assert len(pairs) > len(torchvision.models.list_models(module=torchvision.models))
    for name, weights in pairs:
        entry = zoo[name]
        meta = weights.meta
        transform = weights.transforms()
        crop = transform.crop_size[0]
        assert entry.task == "classification" and entry.dataset == "imagenet", name
        assert entry.metrics["top-1"] == meta["_metrics"]["ImageNet-1K"]["acc@1"], name
        assert entry.metrics["top-5"] == meta["_metrics"]["ImageNet-1K"]["acc@5"], name
        assert repr(entry.preprocessing()) == repr(transform), name
        assert entry.input_size == (3, crop, crop), name
        assert entry.macs == round(meta["_ops"] * 1e9) and entry.params == meta["num_params"], name
        assert entry.num_classes == len(meta["categories"]) == 1000, name
        assert entry.weights.url == weights.url, name
        file_name = weights.url.rsplit("/", 1)[-1]
        assert entry.weights.file_name == file_name, name
        # torch.hub names carry a sha256 prefix: resolve_weights checks the file against it
        assert entry.weights.sha256 and file_name.rsplit(".", 1)[0].endswith("-" + entry.weights.sha256), name


def test_non_default_weights_build_their_own_architecture(zoo):
    entry = zoo["vit_b_16.imagenet1k_swag_e2e_v1"]
    assert entry.input_size == (3, 384, 384)
    assert zoo["vit_b_16"].input_size == (3, 224, 224)
    assert entry.weights.file_name != zoo["vit_b_16"].weights.file_name
    model = entry.builder().eval()
    assert model.image_size == 384
    with torch.no_grad():
        assert model(torch.zeros(1, 3, 384, 384)).shape == (1, 1000)
    # the 384 checkpoint's position embedding (577 tokens) fits only this architecture
    assert model.encoder.pos_embedding.shape == (1, (384 // 16) ** 2 + 1, 768)


@pytest.mark.parametrize("name", ["googlenet", "inception_v3", "maxvit_t"])
def test_builder_matches_what_torchvision_builds_for_the_weights(zoo, name, monkeypatch):
    """torchvision changes some architectures when it loads weights (googlenet and inception_v3
    re-normalise their input, maxvit takes its input size): the zoo's builder must do the same.
    The same state dict in both must give the same outputs."""
    entry = zoo[name]
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)  # no "default weight initialization" warnings
        ours = entry.builder().eval()
    state = ours.state_dict()
    monkeypatch.setattr(WeightsEnum, "get_state_dict", lambda self, *args, **kwargs: state)
    reference = torchvision.models.get_model(name, weights="DEFAULT").eval()
    x = torch.randn(2, *entry.input_size, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(ours(x), reference(x))
    if hasattr(reference, "transform_input"):
        assert ours.transform_input is reference.transform_input is True


# ---- CIFAR-10 ResNets ----------------------------------------------------------------------
@pytest.mark.parametrize("name, published_params", [("resnet20", 0.27e6), ("resnet32", 0.46e6),
                                                     ("resnet44", 0.66e6), ("resnet56", 0.85e6)])
def test_cifar_resnet_params_match_published(zoo, name, published_params):
    entry = zoo[name]
    params = sum(p.numel() for p in entry.builder().parameters())
    assert params == pytest.approx(published_params, rel=0.03)
    assert entry.params == pytest.approx(published_params)
    assert entry.input_size == (3, 32, 32) and entry.num_classes == 10 and entry.dataset == "cifar10"


def test_cifar_resnet20_macs(zoo):
    entry = zoo["resnet20"]
    counted = count_macs(entry.builder().eval(), torch.zeros(1, *entry.input_size))
    assert counted == pytest.approx(40.55e6, rel=0.02)  # counted: 40,551,040 (commonly cited: 40.6M / 41M)
    deeper = [count_macs(zoo[n].builder().eval(), torch.zeros(1, 3, 32, 32)) for n in ("resnet32", "resnet56")]
    assert counted < deeper[0] < deeper[1]


# ---- weights: --weights-dir, the torch.hub cache, hashes, offline errors ----------------------
@pytest.fixture
def hub_dir(tmp_path, monkeypatch):
    """An empty torch.hub cache under tmp_path (restored afterwards)."""
    home = tmp_path / "torch_home"
    monkeypatch.setenv("TORCH_HOME", str(home))
    previous = torch.hub.get_dir()
    torch.hub.set_dir(str(home / "hub"))
    yield home / "hub" / "checkpoints"
    torch.hub.set_dir(previous)


def _write_weights(path: Path, seed: int = 0) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"w": torch.randn(4, 4, generator=torch.Generator().manual_seed(seed))}, path)
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_unreachable_url_names_the_file_and_folders(hub_dir, tmp_path):
    source = WeightsSource("missing-0123abcd.pth", url="http://127.0.0.1:9/missing-0123abcd.pth", sha256="0123abcd")
    with pytest.raises(WeightsUnavailableError) as info:
        resolve_weights(source, tmp_path / "my_weights")
    message = str(info.value)
    assert "missing-0123abcd.pth" in message
    assert str(hub_dir) in message and "--weights-dir" in message
    assert "Offline?" in message
    assert list(hub_dir.iterdir()) == []  # no partial download left behind
    # the weights dir given was searched: a mistyped one (or one without the file) says so
    assert f"The weights dir given, {tmp_path / 'my_weights'}, does not exist" in message
    (tmp_path / "my_weights").mkdir()
    with pytest.raises(WeightsUnavailableError, match="The weights dir given, .*my_weights, has no 'missing-0123abcd.pth'"):
        resolve_weights(source, tmp_path / "my_weights")


def test_no_url_names_every_folder_searched(hub_dir, tmp_path):
    source = WeightsSource("local-only.pt")
    with pytest.raises(WeightsUnavailableError) as info:
        resolve_weights(source, tmp_path / "my_weights")
    message = str(info.value)
    assert "local-only.pt" in message and str(hub_dir) in message
    assert str(tmp_path / "my_weights") in message and "--weights-dir" in message


def test_wrong_hash_is_a_clear_error(hub_dir, tmp_path):
    path = tmp_path / "my_weights" / "model-0123abcd.pth"
    actual = _write_weights(path)
    source = WeightsSource(path.name, url="http://127.0.0.1:9/model-0123abcd.pth", sha256="0123abcd")
    with pytest.raises(WeightsUnavailableError) as info:
        resolve_weights(source, path.parent)
    message = str(info.value)
    assert str(path) in message and actual in message and "expected 0123abcd" in message
    assert "corrupt" in message and "delete it" in message


def test_right_hash_resolves_from_weights_dir_then_hub_cache(hub_dir, tmp_path):
    path = tmp_path / "my_weights" / "model.pth"
    digest = _write_weights(path)
    unreachable = "http://127.0.0.1:9/model.pth"
    # full digest and the 8-hex-digit prefix torch.hub file names carry both verify
    for expected in (digest, digest[:8]):
        source = WeightsSource("model.pth", url=unreachable, sha256=expected)
        assert resolve_weights(source, path.parent) == (path, digest)
    # without --weights-dir, the torch.hub cache is searched
    cached = hub_dir / "model.pth"
    cached_digest = _write_weights(cached, seed=1)
    source = WeightsSource("model.pth", url=unreachable, sha256=cached_digest[:8])
    assert resolve_weights(source) == (cached, cached_digest)
    # --weights-dir comes first
    source = WeightsSource("model.pth", url=unreachable, sha256=None)
    assert resolve_weights(source, path.parent) == (path, digest)


def test_download_checks_the_hash(hub_dir, tmp_path):
    """A (file://) download lands in the hub cache when its hash matches, and nowhere when not."""
    remote = tmp_path / "remote" / "model-x.pth"
    digest = _write_weights(remote)
    bad = WeightsSource("model-x.pth", url=remote.as_uri(), sha256="deadbeef")
    with pytest.raises(WeightsUnavailableError, match="expected deadbeef"):
        resolve_weights(bad)
    assert list(hub_dir.iterdir()) == []
    good = WeightsSource("model-x.pth", url=remote.as_uri(), sha256=digest[:8])
    assert resolve_weights(good) == (hub_dir / "model-x.pth", digest)
    assert list(hub_dir.iterdir()) == [hub_dir / "model-x.pth"]


# ---- unknown names -------------------------------------------------------------------------
@pytest.mark.parametrize("typo, suggestion", [("vit_b16", "vit_b_16"), ("resnet5", "resnet50"),
                                              ("mobilenet_v3_smal", "mobilenet_v3_small")])
def test_unknown_model_suggests_close_names(typo, suggestion):
    task = get_task("classification")
    with pytest.raises(UnknownNameError) as info:
        task.model_entry(typo)
    message = str(info.value)
    assert f"unknown model {typo!r}" in message and "did you mean" in message
    assert repr(suggestion) in message
    assert "--list-models" in message
