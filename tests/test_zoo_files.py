"""What the built-in tasks share instead of repeating it: zoo files (`read_zoo_file` and the
`Task` methods that add their models), `Task.dataset_root`, the unknown-model hint,
`load_checkpoint`, registering one plugin class twice and the optional-import errors."""
from __future__ import annotations

import json

import pytest

from committee_tasks.core.compat import _import_or_explain
from committee_tasks.core.errors import CommitteeError, UnknownNameError
from committee_tasks.core.task import Task
from committee_tasks.core.zoo import WeightsSource, ZooEntry


def _entry(name: str, num_classes: int) -> ZooEntry:
    return ZooEntry(name=name, task="t", builder=None, weights=None, num_classes=num_classes, dataset="d",
                    input_size=(1,), preprocessing=None)


class FileTask(Task):
    name = "filetask"
    DATASETS = ("here", "there")
    list_models_example = "b*"
    zoo_file_fields = {"shape": "this task's own field"}

    def zoo(self):
        return {"builtin": _entry("builtin", 2)}

    def entry_from_zoo_file(self, model):
        return model.entry(self.name, self.base_entry(model), None, tuple(model.get("shape", (1,))))

    def to_probs(self, outputs):
        return outputs

    def build_dataset(self, name, root, **options):
        return self.dataset_root(name, root, holding="the files")

    def sample_statistics(self, combined, targets):
        return combined

    def metric(self, summed_statistics):
        return summed_statistics


def _write(tmp_path, content, name="zoo.json") -> str:
    path = tmp_path / name
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return str(path)


def test_zoo_file_models_join_the_builtin_ones(tmp_path):
    task = FileTask()
    assert list(task.entries()) == ["builtin"] and task.list_datasets() == ["here", "there"]
    task.add_zoo_file(_write(tmp_path, {"models": [
        {"name": "mine", "builder": "m:f", "num_classes": 3, "weights": "https://x/y/mine-1234.pth", "shape": [3, 8]},
        {"name": "builtin", "base": "builtin", "num_classes": 5}]}))
    assert sorted(task.entries()) == ["builtin", "mine"] and list(task.zoo()) == ["builtin"]
    assert task.model_entry("builtin").num_classes == 5  # the file's model replaces the built-in one
    assert task.model_entry("mine").weights == WeightsSource("mine-1234.pth", "https://x/y/mine-1234.pth")
    assert task.model_entry("mine").input_size == (3, 8)
    assert FileTask().list_models() == ["builtin"], "each task instance has its own file models"


def test_yaml_zoo_files_and_a_subclass_adding_models_through_zoo(tmp_path):
    class MoreModels(FileTask):
        def zoo(self):
            return {**super().zoo(), "extra": _entry("extra", 4)}

    task = MoreModels()
    task.add_zoo_file(_write(tmp_path, "models:\n  - {name: tuned, base: extra}\n", "zoo.yaml"))
    assert task.list_models() == ["builtin", "extra", "tuned"] and task.model_entry("tuned").num_classes == 4


def test_bad_zoo_files_name_the_file_and_the_model(tmp_path):
    with pytest.raises(CommitteeError, match=r'cannot read zoo file .*zoo.json \(JSONDecodeError.*expected '
                                             r'\{"models": \[\{"name": \.\.\.'):
        FileTask().add_zoo_file(_write(tmp_path, "{not json"))
    with pytest.raises(CommitteeError, match=r"cannot read zoo file .*KeyError"):
        FileTask().add_zoo_file(_write(tmp_path, {"model": []}))
    with pytest.raises(CommitteeError, match=r"zoo file .*zoo.json, model 'two': field 'num_classes': missing"):
        FileTask().add_zoo_file(_write(tmp_path, {"models": [{"name": "one", "builder": "m:f", "num_classes": 1},
                                                             {"name": "two", "builder": "m:f"}]}))
    with pytest.raises(CommitteeError, match=r"model 'one': the name is used twice"):
        FileTask().add_zoo_file(_write(tmp_path, {"models": [{"name": "one"}, {"name": "one"}]}))
    with pytest.raises(CommitteeError, match=r"model 'b': field 'base': unknown model 'biultin'; did you mean 'builtin'"):
        FileTask().add_zoo_file(_write(tmp_path, {"models": [{"name": "b", "base": "biultin"}]}))
    with pytest.raises(CommitteeError, match=r"model 'c': field 'builder': 'nocolon' is not 'package.module:function'"):
        FileTask().add_zoo_file(_write(tmp_path, {"models": [{"name": "c", "builder": "nocolon", "num_classes": 1}]}))


def test_one_plugin_class_registered_by_entry_point_and_in_process_is_no_error():
    from committee_tasks.core import registry
    from committee_tasks_builtin.classification import ClassificationTask

    registry.register_task(ClassificationTask)  # also registered through its entry point: the same class
    assert type(registry.get_task("classification")) is ClassificationTask

    class Impostor(FileTask):
        name = "classification"

    with pytest.raises(CommitteeError, match=r"task 'classification' is registered twice"):
        registry.register_task(Impostor)


def test_dataset_root_and_unknown_model_errors():
    task = FileTask()
    assert task.build_dataset("here", "/data") == "/data"
    with pytest.raises(UnknownNameError, match=r"unknown dataset 'hear'; did you mean 'here'"):
        task.build_dataset("hear", "/data")
    with pytest.raises(CommitteeError, match=r"dataset 'there' needs --data-root DIR \(the files\)$"):
        task.build_dataset("there", None)
    with pytest.raises(UnknownNameError, match=r"`tools/eval.py --task filetask --list-models 'b\*'`"):
        task.model_entry("nope")


def test_load_checkpoint_says_how_to_resave(tmp_path):
    from committee_tasks.core.members import load_checkpoint

    path = tmp_path / "bad.pth"
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(CommitteeError, match=r"cannot load .*bad.pth: not a readable checkpoint .*, "
                                             r"or re-save it as \{'state_dict': \.\.\.\}$"):
        load_checkpoint(path, "{'state_dict': ...}")


def test_missing_optional_package_is_a_committee_error():
    with pytest.raises(CommitteeError, match=r"^needs no_such_pkg_xyz \(ModuleNotFoundError: No module named"):
        _import_or_explain("no_such_pkg_xyz.sub", "no_such_pkg_xyz", "needs no_such_pkg_xyz ({kind}: {err})")
    assert _import_or_explain("json.decoder", "json", "unused") is json
