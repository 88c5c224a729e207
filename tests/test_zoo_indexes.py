"""The zoo indexes (facts read from torchvision and pytorchvideo, shipped as JSON so listing needs
neither) are current, used only for the version they were read from, and give the same zoo as
reading the packages; `LazyCall` builders import nothing until called."""
from __future__ import annotations

import importlib.util
import json
import pickle
from types import SimpleNamespace

import pytest

from committee_tasks.core import zoo_index
from committee_tasks.core.errors import CommitteeError
from committee_tasks.core.lazy_call import LazyCall, lazy_call
from committee_tasks.core.zoo_index import PackageIndex


# ---- PackageIndex -------------------------------------------------------------------------------
@pytest.fixture
def index(tmp_path, monkeypatch):
    """An index of a fake package "fakepkg" at version 1.0, whose reader counts its calls."""
    calls = []

    def read():
        calls.append(1)
        return [{"name": "a", "size": (3, 4)}, {"name": "b", "size": (5, 6)}]

    versions = {"fakepkg": "1.0"}
    monkeypatch.setattr(zoo_index, "installed_version", versions.get)
    made = PackageIndex(tmp_path / "fake_index.json", "fakepkg", read)
    return SimpleNamespace(write=made.write, load=made.load, drift=made.drift, fresh=made.fresh, path=made.path,
                           calls=calls, versions=versions)


def test_shipped_index_is_used_for_its_version_and_read_again_for_another(index):
    index.write()
    assert len(index.calls) == 1
    records = index.load()
    assert records == [{"name": "a", "size": [3, 4]}, {"name": "b", "size": [5, 6]}]  # as JSON gives them
    assert len(index.calls) == 1  # from the file: the package was not read
    index.versions.pop("fakepkg")  # not installed: listing still works from the file
    assert index.load() == records and len(index.calls) == 1
    index.versions["fakepkg"] = "2.0"  # another version: read the package itself, same types
    assert index.load() == records and len(index.calls) == 2


def test_missing_index_reads_the_package(index):
    assert index.load()[0] == {"name": "a", "size": [3, 4]}
    assert len(index.calls) == 1


def test_drift_names_the_change_and_the_fix(index):
    index.write()
    assert index.drift() is None
    index.versions["fakepkg"] = "2.0"
    message = index.drift()
    assert "written for fakepkg 1.0, 2.0 is installed" in message and zoo_index.WRITER in message


def test_index_file_has_one_record_per_line(index):
    index.write()
    text = index.path.read_text()
    assert json.loads(text) == index.fresh()
    assert '{"name": "a", "size": [3, 4]}' in text.splitlines()[-4:][0]


# ---- LazyCall -----------------------------------------------------------------------------------
def test_lazy_call_imports_only_when_called():
    call = lazy_call("no_such_module_anywhere:build", 1, width=2)  # nothing imported yet
    with pytest.raises(ModuleNotFoundError):
        call()
    join = lazy_call("os.path:join", "a", "b")
    assert join("c") == "a/b/c"  # extra arguments follow the recorded ones
    assert lazy_call("json:JSONDecoder.decode")(json.JSONDecoder(), "[1]") == [1]  # dotted attribute


def test_lazy_call_compares_pickles_and_has_a_stable_repr():
    call = lazy_call("torchvision.models:get_model", "resnet50", weights=None, num_classes=1000)
    assert call == lazy_call("torchvision.models:get_model", "resnet50", weights=None, num_classes=1000)
    assert call != lazy_call("torchvision.models:get_model", "resnet18", weights=None, num_classes=1000)
    assert lazy_call("m:f", b=1, a=2) == lazy_call("m:f", a=2, b=1)  # keyword order is not part of a call
    assert pickle.loads(pickle.dumps(call)) == call
    assert " at 0x" not in repr(call) and "resnet50" in repr(call)


def test_lazy_call_target_must_name_module_and_attribute():
    with pytest.raises(CommitteeError, match="'module:attribute'"):
        LazyCall("torchvision.models.get_model")


# ---- the shipped indexes ------------------------------------------------------------------------
def test_torchvision_index_is_current():
    from committee_tasks_builtin.classification.torchvision_index import INDEX

    assert INDEX.drift() is None


@pytest.mark.skipif(importlib.util.find_spec("pytorchvideo") is None, reason="pytorchvideo not installed")
def test_pytorchvideo_index_is_current():
    from committee_tasks_builtin.video.zoo import INDEX

    assert INDEX.drift() is None


def test_zoo_from_the_index_equals_the_zoo_read_from_torchvision(monkeypatch):
    """Entry by entry, every field (builders and preprocessing are LazyCalls: compared by value)."""
    import torchvision

    from committee_tasks_builtin.classification.torchvision_index import torchvision_entries

    shipped = torchvision_entries()
    monkeypatch.setattr(zoo_index, "installed_version", lambda name: "another version")
    read = torchvision_entries()
    assert list(read) == list(shipped) and read == shipped
    for name, entry in shipped.items():
        weights = torchvision.models.get_model_weights(name.split(".")[0])
        weights = weights.DEFAULT if "." not in name else weights[name.split(".")[1].upper()]
        assert entry.source == f"torchvision {weights}"
        assert entry.builder.target == "torchvision.models:get_model" and entry.builder.args == (name.split(".")[0],)
        assert dict(entry.builder.kwargs)["num_classes"] == entry.num_classes
