"""Task plugins: a third-party package found through the ``committee_tasks.tasks`` entry point,
duplicate names and unknown names.

The plugin package is written into a temporary folder, pip-installed into a separate target
folder (never into the project venv) and put on the subprocess's PYTHONPATH, so
``importlib.metadata`` finds its entry point exactly as it would for a real installation.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from committee_tasks.core import registry
from committee_tasks.core.errors import CommitteeError, UnknownNameError
from committee_tasks.core.task import Task
from tests.conftest import REPO, was_measured

EVAL = REPO / "tools" / "eval.py"

PLUGIN_PYPROJECT = """\
[build-system]
requires = ["setuptools>=61"]
build-backend = "setuptools.build_meta"
"""

PLUGIN_SETUP_CFG = """\
[metadata]
name = toy-committee-plugin
version = 0.1.0

[options]
packages = toy_committee_plugin

[options.entry_points]
committee_tasks.tasks =
    toy = toy_committee_plugin:ToyTask
"""

PLUGIN_INIT = '''\
"""A third-party committee_tasks plugin: 4-way classification of 16-dim vectors by small MLPs.

Unlike the built-in classification task its metric is ``acc`` as a fraction (not top-1 in %),
and its per-sample statistics carry a third column (log-loss) the metric does not use.
"""
from __future__ import annotations

import hashlib
from functools import partial
from pathlib import Path

import numpy as np
import torch
from torch import nn

from committee_tasks.core.files import atomic_write
from committee_tasks.core.errors import unknown_name
from committee_tasks.core.samples import Sample, SampleDataset
from committee_tasks.core.task import Task
from committee_tasks.core.zoo import WeightsSource, ZooEntry

from committee_tasks.committees.confidence import register_confidence

# a confidence of the plugin's own, registered on import: the search and cards must find it
register_confidence("toy_top2", lambda probs: probs.topk(2, dim=1).values.sum(dim=1).float())

DIM, CLASSES = 16, 4
HIDDEN = {"a": 2, "b": 8, "c": 32}  # hidden width of each member
STEPS = {"a": 60, "b": 40, "c": 120}  # full-batch training steps of each member
NOISE = 1.6


def make_split(seed: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    centers = np.random.default_rng(0).normal(size=(CLASSES, DIM))  # shared by every split
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, CLASSES, n)
    vectors = centers[labels] + NOISE * rng.normal(size=(n, DIM))
    return vectors.astype(np.float32), labels.astype(np.int64)


def build_model(name: str) -> nn.Module:
    return nn.Sequential(nn.Linear(DIM, HIDDEN[name]), nn.ReLU(), nn.Linear(HIDDEN[name], CLASSES))


class ToyTransform:
    def __call__(self, vector) -> torch.Tensor:
        return torch.as_tensor(np.asarray(vector, dtype=np.float32))

    def __repr__(self) -> str:  # stable across processes: it keys the prediction cache
        return "ToyTransform(float32)"


def train(name: str, destination: Path) -> None:
    """Fit ``name`` on the train split (seeded, well under a second); write it atomically."""
    x, y = (torch.from_numpy(a) for a in make_split(1, 512))
    torch.manual_seed(HIDDEN[name])
    model = build_model(name)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.02)
    for _ in range(STEPS[name]):
        loss = nn.functional.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    atomic_write(destination, lambda f: torch.save(model.state_dict(), f))


class ToyDataset(SampleDataset):
    name = "toyset"

    def __init__(self, n: int = 300):
        self.vectors, self.labels = make_split(2, n)
        self._ids = [f"toy-{i:04d}" for i in range(n)]  # served by SampleDataset.ids

    def fingerprint(self) -> str:
        return hashlib.sha256(self.vectors.tobytes() + self.labels.tobytes()).hexdigest()

    def __getitem__(self, index: int) -> Sample:
        return Sample(self._ids[index], self.vectors[index], int(self.labels[index]))


class ToyTask(Task):
    name = "toy"
    metric_name = "acc"

    def zoo(self):
        return {
            name: ZooEntry(
                name=name, task=self.name, builder=partial(build_model, name),
                weights=WeightsSource(f"toy-{name}.pt", trainer=partial(train, name)),
                num_classes=CLASSES, dataset="toyset", input_size=(DIM,), preprocessing=ToyTransform,
                macs=(DIM + CLASSES) * HIDDEN[name], source="toy plugin",
            )
            for name in HIDDEN
        }

    def to_probs(self, outputs: torch.Tensor) -> torch.Tensor:
        return torch.softmax(outputs.float(), dim=1)

    def list_datasets(self):
        return ["toyset"]

    def build_dataset(self, name, root, **options):
        if name != "toyset":
            raise unknown_name("dataset", name, self.list_datasets())
        return ToyDataset()

    def sample_statistics(self, combined, targets):
        correct = (combined.argmax(axis=1) == targets).astype(np.float64)
        p_true = combined[np.arange(len(targets)), targets].astype(np.float64)
        return np.stack([correct, np.ones_like(correct), -np.log(np.clip(p_true, 1e-12, 1))], axis=1)

    def metric(self, summed_statistics):  # (..., K) -> (...): the search scores many committees at once
        correct, count = summed_statistics[..., 0], summed_statistics[..., 1]
        with np.errstate(invalid="ignore", divide="ignore"):
            return correct / count
'''


@pytest.fixture(scope="module")
def toy_plugin(tmp_path_factory):
    """The toy plugin, pip-installed (offline) into its own target folder, once per module."""
    root = tmp_path_factory.mktemp("toy_plugin")
    src = root / "plugin"
    (src / "toy_committee_plugin").mkdir(parents=True)
    (src / "pyproject.toml").write_text(PLUGIN_PYPROJECT)
    (src / "setup.cfg").write_text(PLUGIN_SETUP_CFG)
    (src / "toy_committee_plugin" / "__init__.py").write_text(PLUGIN_INIT)
    site = root / "site"
    pip = [sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--no-index",
           "--no-cache-dir", "--disable-pip-version-check", "--quiet", "--target", str(site), str(src)]
    done = subprocess.run(pip, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"pip install failed:\n{done.stdout}\n{done.stderr}"
    assert list(site.glob("toy_committee_plugin-*.dist-info/entry_points.txt"))
    return SimpleNamespace(root=root, site=site, torch_home=root / "torch", cache=root / "cache")


def run_eval(plugin, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """tools/eval.py in a fresh interpreter that sees the plugin through PYTHONPATH."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(plugin.site), *filter(None, [os.environ.get("PYTHONPATH")])])
    env["TORCH_HOME"] = str(plugin.torch_home)  # the plugin's trainer writes its weights here
    env["COMMITTEE_TASKS_CACHE"] = str(plugin.cache)
    return subprocess.run([sys.executable, str(EVAL), *args], capture_output=True, text=True,
                          env=env, cwd=cwd or plugin.root, timeout=300)


def test_plugin_is_listed_next_to_the_builtin(toy_plugin):
    done = run_eval(toy_plugin, "--list-tasks")
    assert done.returncode == 0, done.stderr
    assert {"classification", "toy"} <= set(done.stdout.split())

    done = run_eval(toy_plugin, "--task", "toy", "--list-models")
    assert done.returncode == 0, done.stderr
    lines = [line.split() for line in done.stdout.splitlines() if line.strip()]
    assert [fields[0] for fields in lines] == ["a", "b", "c"]
    assert all(fields[1] == "toyset" for fields in lines)
    # published MACs, (16 + 4) * hidden width, and the plugin's own metric name
    assert [fields[fields.index("MACs=") + 1] for fields in lines] == ["40", "160", "640"]
    assert all(fields[-1] == "acc=?" for fields in lines)

    done = run_eval(toy_plugin, "--task", "toy", "--list-datasets")
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["toyset"]


def test_plugin_is_invisible_without_its_path(toy_plugin):
    """Sanity check of the set-up: the entry point comes from the target folder, not the venv."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run([sys.executable, str(EVAL), "--list-tasks"], capture_output=True, text=True,
                          env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "toy" not in done.stdout.split()


def _expected_probs(member, vectors: np.ndarray, batch_size: int = 128) -> np.ndarray:
    """A member's probabilities as the loop caches them: softmax of the logits, rounded to float16,
    computed on batches of the CLI's default size."""
    out = []
    with torch.no_grad():
        for s in range(0, len(vectors), batch_size):
            logits = member.module(torch.from_numpy(vectors[s:s + batch_size]))
            out.append(torch.softmax(logits.float(), dim=1).numpy())
    return np.concatenate(out).astype(np.float16)


def test_plugin_ensemble_and_cascade_match_independent_numpy(toy_plugin, tmp_path, monkeypatch):
    out_json = tmp_path / "out.json"
    args = ("--task", "toy", "--dataset", "toyset", "--ensemble", "a,b", "--cascade", "a,b",
            "--thresholds", "0.8", "--cache-dir", str(toy_plugin.cache), "--workers", "0",
            "--measure-samples", "64", "--no-progress", "--json", str(out_json))
    done = run_eval(toy_plugin, *args)
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(out_json.read_text())
    assert report["task"] == "toy" and report["dataset"] == "toyset" and report["samples"] == 300
    rows = {r["name"]: r for r in report["rows"]}
    assert [r["kind"] for r in report["rows"]] == ["member", "member", "ensemble", "cascade"]
    assert all(r["metric_name"] == "acc" for r in report["rows"])
    assert "ensemble(a+b)" in done.stdout and "cascade(a>b)@0.8" in done.stdout

    # The trainer ran in the subprocess and left the weights in its torch.hub cache.
    checkpoints = toy_plugin.torch_home / "hub" / "checkpoints"
    assert sorted(p.name for p in checkpoints.glob("toy-*.pt")) == ["toy-a.pt", "toy-b.pt"]

    # Load the same members here from the same files (via --weights-dir semantics) and recompute
    # every figure with numpy, independently of the committee code.
    monkeypatch.syspath_prepend(str(toy_plugin.site))
    import toy_committee_plugin as plugin

    task = plugin.ToyTask()
    members = {n: task.build_member(n, weights_dir=checkpoints) for n in ("a", "b")}
    dataset = plugin.ToyDataset()
    x, y = dataset.vectors, dataset.labels
    p = {n: _expected_probs(m, x).astype(np.float32) for n, m in members.items()}
    macs = {n: (plugin.DIM + plugin.CLASSES) * plugin.HIDDEN[n] for n in ("a", "b")}

    def acc(probs: np.ndarray) -> np.ndarray:
        return (probs.argmax(axis=1) == y).astype(np.float64)

    for n in ("a", "b"):
        assert rows[n]["metric"] == pytest.approx(acc(p[n]).mean(), abs=1e-12)
        assert rows[n]["macs_mean"] == macs[n]
    ensemble = (p["a"] + p["b"]) / 2
    assert rows["ensemble(a+b)"]["metric"] == pytest.approx(acc(ensemble).mean(), abs=1e-12)
    assert rows["ensemble(a+b)"]["macs_mean"] == macs["a"] + macs["b"]

    exits_first = p["a"].max(axis=1) >= 0.8
    cascade_correct = np.where(exits_first, acc(p["a"]), acc(ensemble))
    cascade = rows["cascade(a>b)@0.8"]
    assert cascade["metric"] == pytest.approx(cascade_correct.mean(), abs=1e-12)
    assert cascade["exit_fractions"] == pytest.approx([exits_first.mean(), 1 - exits_first.mean()], abs=1e-12)
    assert 0 < exits_first.mean() < 1  # the cascade really exits at both stages on this data
    assert cascade["macs_mean"] == pytest.approx(macs["a"] + (1 - exits_first.mean()) * macs["b"])
    assert cascade["macs_worst"] == macs["a"] + macs["b"]
    assert cascade["reference"] == "b"  # the member with most MACs
    assert cascade["speedup_macs"] == pytest.approx(macs["b"] / cascade["macs_mean"])
    assert all(was_measured(r) for r in report["rows"])  # --measure-samples 64
    # a real committee problem: the bigger member is better, and the committees are not trivial
    assert rows["a"]["metric"] < rows["b"]["metric"]

    # A second run reads every output from the cache and reports the same figures.
    done = run_eval(toy_plugin, *args[:-1], str(tmp_path / "again.json"))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "all 300 samples of 2 members are cached" in done.stderr
    again = json.loads((tmp_path / "again.json").read_text())
    assert [r["metric"] for r in again["rows"]] == [r["metric"] for r in report["rows"]]


def test_a_plugins_confidence_and_cards_work_without_naming_the_plugin_again(toy_plugin, tmp_path):
    """search.py checked the confidence before importing the task (its plugin registers it), and
    eval --committee ran a toy card as classification ('unknown model a') without --task."""
    cards = tmp_path / "cards"
    search = subprocess.run([sys.executable, str(EVAL.with_name("search.py")), "--task", "toy", "--dataset", "toyset",
                             "--pool", "a,b", "--confidence", "toy_top2", "--cache-dir", str(toy_plugin.cache),
                             "--workers", "0", "--no-progress", "--cards", str(cards)],
                            capture_output=True, text=True, timeout=300, cwd=toy_plugin.root,
                            env={**os.environ, "PYTHONPATH": str(toy_plugin.site),
                                 "TORCH_HOME": str(toy_plugin.torch_home)})
    assert search.returncode == 0, search.stdout + search.stderr
    card = next(cards.glob("cascade*.json"))
    assert json.loads(card.read_text())["confidence"] == "toy_top2"
    done = run_eval(toy_plugin, "--dataset", "toyset", "--committee", str(card), "--cache-dir", str(toy_plugin.cache),
                    "--workers", "0", "--measure-samples", "0", "--no-progress")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "toy on toyset" in done.stdout


def _task_class(task_name: str, class_name: str, module: str) -> type[Task]:
    return type(class_name, (Task,), {"name": task_name, "__module__": module})


@pytest.fixture
def scratch_registry(monkeypatch):
    """The real registry (entry points loaded), copied: what a test registers is dropped after it."""
    registry.list_tasks()
    monkeypatch.setattr(registry, "_registry", dict(registry._registry))
    monkeypatch.setattr(registry, "_entry_points_loaded", registry._entry_points_loaded)
    return registry


def test_registering_a_name_twice_names_both_places(scratch_registry):
    first = scratch_registry.register_task(_task_class("dup", "FirstTask", "pkg_one.tasks"))
    assert scratch_registry.register_task(first) is first  # the same class again is harmless
    with pytest.raises(CommitteeError) as err:
        scratch_registry.register_task(_task_class("dup", "SecondTask", "pkg_two.tasks"))
    message = str(err.value)
    assert "'dup' is registered twice" in message
    assert "pkg_one.tasks.FirstTask" in message and "pkg_two.tasks.SecondTask" in message
    assert scratch_registry._registry["dup"][0] == "pkg_one.tasks.FirstTask"  # the first one stays

    # Clashing with the built-in names its entry point and distribution.
    with pytest.raises(CommitteeError) as err:
        scratch_registry.register_task(_task_class("classification", "Impostor", "pkg_three"))
    message = str(err.value)
    assert "entry point 'committee_tasks_builtin.classification:ClassificationTask' of committee-tasks" in message
    assert "pkg_three.Impostor" in message


def test_scratch_registry_left_the_real_one_untouched():
    assert "dup" not in registry.list_tasks()
    assert registry._registry["classification"][0].startswith("entry point")


def test_task_that_fails_to_load_says_which(scratch_registry):
    def broken():
        raise ImportError("No module named 'missing_dependency'")

    scratch_registry._registry["broken"] = ("entry point 'broken_pkg:Task' of broken-pkg", broken)
    with pytest.raises(CommitteeError, match=r"task 'broken' \(entry point 'broken_pkg:Task' of broken-pkg\) "
                                             r"failed to load: ImportError: No module named 'missing_dependency'"):
        scratch_registry.get_task("broken")


def test_task_class_that_cannot_be_instantiated_says_which(scratch_registry):
    class Incomplete(Task):  # forgets every abstract method
        name = "incomplete"

    scratch_registry._registry["incomplete"] = ("entry point 'pkg:Incomplete' of pkg", lambda: Incomplete)
    with pytest.raises(CommitteeError, match=r"task 'incomplete' \(entry point 'pkg:Incomplete' of pkg\) "
                                             r"failed to load: TypeError: Can't instantiate abstract class"):
        scratch_registry.get_task("incomplete")


def test_unknown_task_suggests_close_matches():
    with pytest.raises(UnknownNameError) as err:
        registry.get_task("clasification")
    message = str(err.value)
    assert message.startswith("unknown task 'clasification'; did you mean 'classification'?")
    assert "--list-tasks" in message and registry.ENTRY_POINT_GROUP in message
    assert isinstance(err.value, KeyError)  # and str() is not the quoted KeyError form
    assert not message.startswith('"')


def test_unknown_task_on_the_command_line_exits_2(toy_plugin):
    done = run_eval(toy_plugin, "--task", "clasification", "--list-models")
    assert done.returncode == 2
    assert "error: unknown task 'clasification'; did you mean 'classification'?" in done.stderr
    assert "Traceback" not in done.stderr and done.stdout == ""

    # plugin names are suggested like the built-ins
    done = run_eval(toy_plugin, "--task", "toyy", "--dataset", "toyset", "--models", "a")
    assert done.returncode == 2
    assert "unknown task 'toyy'; did you mean 'toy'?" in done.stderr


def test_dataset_without_ids_says_how_to_give_them():
    from committee_tasks.core.samples import SampleDataset

    class NoIds(SampleDataset):
        def fingerprint(self):
            return "x"

        def __getitem__(self, index):
            raise IndexError(index)

    with pytest.raises(CommitteeError, match=r"NoIds has no sample ids: set self\._ids"):
        len(NoIds())


def test_a_metric_written_for_one_vector_is_refused_before_any_search():
    """A plugin's metric(summed) written for one (K,) vector (as `c, n = summed`) scored members and
    ensembles, then failed deep in fitting a cascade with a broadcasting error."""
    from committee_tasks import ArrayDataset, Member, Pool
    from committee_tasks_builtin.classification import ClassificationTask

    class OneVector(ClassificationTask):
        name = "one_vector"

        def metric(self, summed_statistics):
            correct, count = summed_statistics
            return 100.0 * correct / count

    torch.manual_seed(0)
    member = Member.from_module(torch.nn.Linear(4, 3), name="m")
    data = ArrayDataset(torch.randn(20, 4), torch.randint(0, 3, (20,)))
    with pytest.raises(CommitteeError, match=r"task 'one_vector': metric\(summed\) .* must take \(\.\.\., K\)"):
        Pool.evaluate([member], data, OneVector())
    assert Pool.evaluate([member], data, ClassificationTask()).score("m").metric >= 0


@pytest.mark.parametrize("statistics, shape", [
    (lambda s: s[:, 0], r"\(8,\)"),  # one number per sample: members scored above 100
    (lambda s: s.sum(axis=0, keepdims=True), r"\(1, 2\)"),  # already summed
    (lambda s: np.stack([s, s], axis=1), r"\(8, 2, 2\)"),  # an extra axis
])
def test_sample_statistics_of_another_shape_are_refused_before_any_search(statistics, shape):
    from committee_tasks import ArrayDataset, Member, Pool
    from committee_tasks_builtin.classification import ClassificationTask

    class OddStatistics(ClassificationTask):
        name = "odd_statistics"

        def sample_statistics(self, combined, targets):
            return statistics(super().sample_statistics(combined, targets))

    torch.manual_seed(0)
    member = Member.from_module(torch.nn.Linear(4, 3), name="m")
    data = ArrayDataset(torch.randn(20, 4), torch.randint(0, 3, (20,)))
    with pytest.raises(CommitteeError, match=rf"task 'odd_statistics': sample_statistics gave shape {shape} for 8 "
                                             r"samples, where \(N, K\) is due"):
        Pool.evaluate([member], data, OddStatistics())


def test_a_task_sets_the_confidence_its_cascades_exit_on_by_default(scratch_registry):
    """A multi-label task's cascades exited on max_prob unless every command named another."""
    from committee_tasks import ArrayDataset, EvalRequest, Member, Pool, SearchRequest
    from committee_tasks.api.objectives import Match
    from committee_tasks_builtin.classification import ClassificationTask

    @scratch_registry.register_task
    class MarginFirst(ClassificationTask):
        name = "margin_first"
        default_confidence = "margin"

    assert EvalRequest(task="margin_first", models=["m"]).confidence == "margin"
    assert EvalRequest(task="margin_first", models=["m"], confidence="neg_entropy").confidence == "neg_entropy"
    assert EvalRequest(models=["m"]).confidence == "max_prob"  # the built-in tasks' default
    assert SearchRequest(task="margin_first", pool=["a", "b"]).confidences == ("margin",)
    torch.manual_seed(0)
    members = [Member.from_module(torch.nn.Linear(4, 3), name=name) for name in ("a", "b")]
    pool = Pool.evaluate(members, ArrayDataset(torch.randn(40, 4), torch.randint(0, 3, (40,))), MarginFirst())
    fitted = pool.fit(["a", "b"], Match("b"))
    assert fitted is not None and fitted.confidence == "margin"
