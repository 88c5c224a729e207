"""What the built-in tasks share instead of repeating it: --zoo files (`read_zoo_file`,
`weights_from_spec`, the `ZooFiles` mixin), `Task.dataset_root`, the unknown-model hint,
`load_checkpoint` and the optional-import errors."""
from __future__ import annotations

import json
from dataclasses import dataclass

import pytest

from committee_tasks.core.compat import _import_or_explain
from committee_tasks.core.errors import CommitteeError, UnknownNameError
from committee_tasks.core.task import Task
from committee_tasks.core.zoo import WeightsSource, ZooEntry
from committee_tasks.core.zoo_files import ZooFiles, read_zoo_file, weights_from_spec


@dataclass(frozen=True)
class Model:
    entry: ZooEntry


def _model(item) -> Model:
    return Model(ZooEntry(name=item["name"], task="t", builder=None, weights=weights_from_spec(item),
                          num_classes=int(item["num_classes"]), dataset="d", input_size=(1,), preprocessing=None))


class FileTask(ZooFiles[Model], Task):
    name = "filetask"
    DATASETS = ("here", "there")
    list_models_example = "b*"
    builtin_models = staticmethod(lambda: {"builtin": _model({"name": "builtin", "num_classes": 2})})
    models_from_file = staticmethod(lambda path: read_zoo_file(path, '{"name": ...}', _model))

    def to_probs(self, outputs):
        return outputs

    def build_dataset(self, name, root, **options):
        return self.dataset_root(name, root, holding="the files")

    def sample_statistics(self, combined, targets):
        return combined

    def metric(self, summed_statistics):
        return summed_statistics


def _write(tmp_path, content) -> str:
    path = tmp_path / "zoo.json"
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return str(path)


def test_zoo_file_models_join_the_builtin_ones(tmp_path):
    task = FileTask()
    assert list(task.zoo()) == ["builtin"] and task.list_datasets() == ["here", "there"]
    task.add_zoo_file(_write(tmp_path, {"models": [
        {"name": "mine", "num_classes": 3, "url": "https://x/y/mine-1234.pth", "sha256": "1234"},
        {"name": "builtin", "num_classes": 5}]}))
    assert sorted(task.zoo()) == ["builtin", "mine"]
    assert task.model_entry("builtin").num_classes == 5  # the file's model replaces the built-in one
    assert task.model_entry("mine").weights == WeightsSource("mine-1234.pth", "https://x/y/mine-1234.pth", "1234")
    assert FileTask().list_models() == ["builtin"], "each task instance has its own file models"


def test_bad_zoo_files_name_the_file_and_the_model(tmp_path):
    with pytest.raises(CommitteeError, match=r'cannot read zoo file .*zoo.json \(JSONDecodeError.*expected '
                                             r'\{"models": \[\{"name": \.\.\.\}\]\}'):
        FileTask().add_zoo_file(_write(tmp_path, "{not json"))
    with pytest.raises(CommitteeError, match=r"cannot read zoo file .*KeyError"):
        FileTask().add_zoo_file(_write(tmp_path, {"model": []}))
    with pytest.raises(CommitteeError, match=r"zoo file .*zoo.json, model 'two': KeyError: 'num_classes'"):
        FileTask().add_zoo_file(_write(tmp_path, {"models": [{"name": "one", "num_classes": 1}, {"name": "two"}]}))
    assert weights_from_spec({"name": "x"}) is None


def test_dataset_root_and_unknown_model_errors():
    task = FileTask()
    assert task.build_dataset("here", "/data") == "/data"
    with pytest.raises(UnknownNameError, match=r"unknown dataset 'hear'; did you mean 'here'"):
        task.build_dataset("hear", "/data")
    with pytest.raises(CommitteeError, match=r"dataset 'there' needs --data-root DIR \(the files\)$"):
        task.build_dataset("there", None)
    with pytest.raises(UnknownNameError, match=r"`tools/eval.py --list-models --task filetask 'b\*'`"):
        task.model_entry("nope")


def test_load_checkpoint_says_how_to_resave(tmp_path):
    from committee_tasks.core.members import load_checkpoint

    path = tmp_path / "bad.pth"
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(CommitteeError, match=r"cannot load .*bad.pth as a weights-only checkpoint .*; "
                                             r"re-save it as \{'state_dict': \.\.\.\}$"):
        load_checkpoint(path, "{'state_dict': ...}")


def test_missing_optional_package_is_a_committee_error():
    with pytest.raises(CommitteeError, match=r"^needs no_such_pkg_xyz \(ModuleNotFoundError: No module named"):
        _import_or_explain("no_such_pkg_xyz.sub", "no_such_pkg_xyz", "needs no_such_pkg_xyz ({kind}: {err})")
    assert _import_or_explain("json.decoder", "json", "unused") is json
