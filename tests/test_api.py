"""The typed API: the README's notebook example runs as written, and the API's pieces behave."""
from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from committee_tasks import ArrayDataset, Budget, CommitteeError, Ensemble, Match, Member, Pool
from committee_tasks.api.options import ExecutionOptions
from tests.conftest import REPO


def readme_block(name: str) -> str:
    text = (REPO / "README.md").read_text()
    block = re.search(rf"<!-- {name} -->\n```python\n(.*?)```\n<!-- end: {name} -->", text, re.S)
    assert block, f"README has no python block {name!r}"
    return block.group(1)


def test_readme_python_api_example_runs(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(readme_block("python-api"), "README.md:python-api", "exec"), namespace)
    printed = capsys.readouterr().out.splitlines()
    cascade_top1, large_top1 = map(float, printed[0].split())
    assert 0 <= cascade_top1 <= 100 and large_top1 > 80  # held-out figures; real digits
    calibration, cascade = namespace["calibration"], namespace["cascade"]
    # what Match promises: large's top-1 on the calibration half, at fewer MACs
    matched, large = calibration.score(cascade), calibration.score("large")
    assert matched.metric >= large.metric - 1e-9 and matched.macs_mean < large.macs_mean
    # and it is a real cascade on the held-out half: most samples stop at the small model
    held_out = namespace["test"].score(cascade)
    assert held_out.exit_fractions[0] > 0.5 and held_out.macs_mean < 0.5 * namespace["test"].score("large").macs_mean
    out = namespace["out"]
    assert out.probs.shape == (8, 10) and set(out.exit_stage.tolist()) <= {0, 1}
    assert (tmp_path / "cascade.json").is_file() and not (tmp_path / ".cache").exists()


def _members(seed_small=0):
    torch.manual_seed(seed_small)
    small = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 3))
    large = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 32), torch.nn.ReLU(), torch.nn.Linear(32, 3))
    return Member.from_module(small, name="small"), Member.from_module(large, name="large")


def _data(n=200):
    rng = np.random.default_rng(0)
    return ArrayDataset(rng.normal(size=(n, 3, 4)).astype(np.float32), rng.integers(0, 3, n))


def test_from_module_fingerprints_the_weights():
    small, _ = _members()
    again, _ = _members()
    assert small.fingerprint == again.fingerprint and small.num_classes == 3
    with torch.no_grad():
        next(again.module.parameters())[0, 0] += 1e-3
    assert Member.from_module(again.module, name="small").fingerprint != small.fingerprint


def test_a_module_changed_in_place_is_not_read_from_the_cache_nor_run_under_an_old_card(tmp_path):
    """A notebook trains a member's module further after making the Member: the disk cache must
    not answer with the old module's predictions, a card made before must refuse it, and the pool
    evaluated before must not make a card of it (each of these held the old figures)."""
    from committee_tasks import Cascade, load_committee

    small, large = _members()
    before = Pool.evaluate([small, large], _data(), cache=tmp_path)
    card = before.card(Cascade(["small", "large"], [0.9]))
    fingerprint = small.fingerprint
    small.module.to(memory_format=torch.channels_last)  # a move of layout is no change
    assert small.fingerprint == fingerprint
    with torch.no_grad():
        for p in small.module.parameters():
            p.mul_(-1.0)
    assert small.fingerprint != fingerprint
    after = Pool.evaluate([small, large], _data(), cache=tmp_path)
    fresh = Pool.evaluate([small, large], _data())  # in memory: what the changed module predicts
    np.testing.assert_array_equal(after.predictions.outputs["small"], fresh.predictions.outputs["small"])
    assert not np.array_equal(after.predictions.outputs["small"], before.predictions.outputs["small"])
    with pytest.raises(CommitteeError, match="member 'small' has fingerprint .* its weights changed .*digested another way"):
        load_committee(card, members=[small, large])
    with pytest.raises(CommitteeError, match="member 'small' changed since this pool was evaluated"):
        before.card(Cascade(["small", "large"], [0.9]))
    after.card(Cascade(["small", "large"], [0.9]))


def test_from_module_takes_batchnorm_models():
    """BatchNorm keeps a 0-d buffer (num_batches_tracked), which the fingerprint must hash too."""
    import torchvision

    torch.manual_seed(0)
    net = torchvision.models.resnet18(num_classes=3).eval()
    member = Member.from_module(net, name="bn")
    before = member.fingerprint
    assert member.num_classes == 3 and before == Member.from_module(net, name="bn").fingerprint
    net.bn1.num_batches_tracked += 1
    assert Member.from_module(net, name="bn").fingerprint == member.fingerprint != before


def test_memory_and_disk_caches_agree_and_disk_is_reused(tmp_path):
    small, large = _members()
    in_memory = Pool.evaluate([small, large], _data())
    on_disk = Pool.evaluate([small, large], _data(), cache=tmp_path)
    assert any(tmp_path.rglob("*.npz"))
    for name in ("small", "large"):
        np.testing.assert_array_equal(in_memory.predictions.outputs[name], on_disk.predictions.outputs[name])
    ensemble = Ensemble(["small", "large"])
    assert in_memory.score(ensemble).metric == on_disk.score(ensemble).metric


def test_objectives_are_objects():
    small, large = _members()
    calib, _ = Pool.evaluate([small, large], _data()).split(0.5)
    matched = calib.fit(["small", "large"], Match("large"))
    assert matched is None or calib.score(matched).metric >= calib.score("large").metric - 1e-9
    again = calib.fit("small, large", Match("large"))  # "a,b", as the command line takes it
    assert (again and again.name) == (matched and matched.name)
    within = calib.fit(["small", "large"], Budget("large"))
    assert within is not None and calib.score(within).macs_mean <= calib.score("large").macs_mean * (1 + 1e-9)
    assert Budget.parse("2.5e6") == Budget(macs=2.5e6) and Budget.parse("large") == Budget(reference="large")
    # MACs as the tables print them ("50M" was looked up as a model name), in the API too
    assert Budget.parse("50M") == Budget(macs=5e7) == Budget("50M") == Budget("5e7")
    assert Budget.parse("4.09G") == Budget(macs=4.09e9) and Budget.parse("115.4K") == Budget(macs=115400.0)
    # echoed as the tables print MACs (it read "budget 2.5e+08 MACs" for --budget 250M)
    assert [Budget(text).label for text in ("250M", "2.5e8", "123456789")] == [
        "budget 250M MACs", "budget 250M MACs", "budget 123.457M MACs"]
    with pytest.raises(CommitteeError, match="a reference model or a number of MACs"):
        Budget()
    assert Budget(macs="50M") == Budget(macs=np.int64(50_000_000)) == Budget(macs=5e7)  # a TypeError at fit time
    with pytest.raises(CommitteeError, match="number of MACs per sample .* got 'large'"):
        Budget(macs="large")


def test_requests_and_committees_take_names_as_lists_or_comma_strings():
    """A string was read letter by letter (EvalRequest(models="resnet20") listed 'e' twice)."""
    from committee_tasks import Cascade, EvalRequest, SearchRequest

    request = EvalRequest(models="a", ensembles="a,b", cascades=["a,b", ["b", "c"]])
    assert request.models == ["a"] and request.ensembles == [["a", "b"]]
    assert [c.members for c in request.cascades] == [("a", "b"), ("b", "c")]
    assert Ensemble("a, b").members == Cascade("a,b", 0.9).members == ["a", "b"]
    assert SearchRequest(pool="a,b,c").pool == ["a", "b", "c"]
    with pytest.raises(CommitteeError, match=r"ensembles takes a list of committees, got the names \['a', 'b'\]: "
                                             r"for one committee of these members pass ensembles=\[\['a', 'b'\]\]"):
        EvalRequest(ensembles=["a", "b"])


def test_array_dataset_checks_its_input():
    with pytest.raises(CommitteeError, match="3 inputs but 2 targets"):
        ArrayDataset(np.zeros((3, 2)), [0, 1])
    assert ArrayDataset(np.zeros((3, 2)), [0, 1, 2]).fingerprint() != ArrayDataset(np.ones((3, 2)), [0, 1, 2]).fingerprint()


def test_an_array_is_hashed_in_chunks_in_parallel_to_the_same_digest_on_any_machine(monkeypatch):
    """The fingerprint's chunked sha256: each chunk's sha256, concatenated, whatever the CPU
    count; a byte changed in any chunk (or the last, short one) changes the fingerprint."""
    import hashlib

    from committee_tasks.core import in_memory, threads

    monkeypatch.setattr(in_memory, "HASH_CHUNK", 1000)  # a small chunk, so a small array has many
    data = np.random.default_rng(0).integers(0, 256, 10_500, dtype=np.uint8)
    by_hand = b"".join(hashlib.sha256(data[s:s + 1000].tobytes()).digest() for s in range(0, 10_500, 1000))
    assert in_memory.chunked_sha256(data) == by_hand
    monkeypatch.setattr(threads, "available_cpus", lambda: 1)
    assert in_memory.chunked_sha256(data) == by_hand
    assert in_memory.chunked_sha256(data[:0]) == hashlib.sha256(b"").digest()
    targets = np.zeros(len(data))
    seen = {ArrayDataset(data, targets).fingerprint()}
    for where in (0, 4_999, 10_499):
        changed = data.copy()
        changed[where] ^= 1
        seen.add(ArrayDataset(changed, targets).fingerprint())
    assert len(seen) == 4


def test_arrays_in_memory_are_read_in_the_main_process_unless_the_user_names_workers(monkeypatch):
    """An ArrayDataset has nothing to decode: the loop reads it without worker processes
    (`preferred_workers`), unless ExecutionOptions(workers=...) says otherwise; file datasets
    keep the thread policy's default."""
    from committee_tasks.api import ExecutionOptions
    from committee_tasks.core import threads
    from committee_tasks.engine import loop

    seen = []
    real = loop.evaluate_pool

    def spy(task, members, dataset, cache, limit, options):
        seen.append(options.num_workers)
        return real(task, members, dataset, cache, limit, options)

    monkeypatch.setattr(loop, "evaluate_pool", spy)
    monkeypatch.setattr(threads, "default_workers", lambda: 3)
    torch.manual_seed(0)
    member = Member.from_module(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3)), name="lin")
    data = ArrayDataset(np.random.default_rng(0).normal(size=(6, 4)).astype(np.float32), [0, 1, 2, 0, 1, 2])
    Pool.evaluate([member], data, options=ExecutionOptions(cache_dir="memory", progress=False))
    Pool.evaluate([member], data, options=ExecutionOptions(cache_dir="memory", progress=False, workers=1))
    assert seen == [0, 1]

    class FromFiles(ArrayDataset):
        preferred_workers = None

    Pool.evaluate([member], FromFiles(data.inputs, data.targets), options=ExecutionOptions(cache_dir="memory",
                                                                                         progress=False))
    assert seen == [0, 1, 3]


def test_a_card_of_a_tempered_pool_carries_its_temperatures():
    """``pool.tempered(pool.fit_temperatures())``: the card runs the committee as that pool scored
    it (the card's temperatures were all 1, so its exits and MACs differed)."""
    from committee_tasks import Cascade, load_committee

    small, large = _members()
    data = _data()
    pool = Pool.evaluate([small, large], data, options=ExecutionOptions(output_dtype="float32", progress=False))
    tempered = pool.tempered({"small": 3.0, "large": 0.5})
    cascade = Cascade(["small", "large"], [0.6])
    scored = tempered.score(cascade)
    assert scored.macs_mean != pool.score(cascade).macs_mean  # the temperatures matter here
    card = tempered.split(0.5)[0].card(cascade)  # views of the pool keep them
    assert card.temperatures == {"small": 3.0, "large": 0.5}
    out = load_committee(card, members=[small, large])(torch.as_tensor(data.inputs))
    np.testing.assert_array_equal(out.exit_stage.numpy(), scored.exit_stage)
    assert tempered.tempered({"small": 2.0}).temperatures == {"small": 6.0, "large": 0.5}
    with pytest.raises(CommitteeError, match="this pool is tempered with .* leave temperatures= out"):
        tempered.card(cascade, temperatures={"small": 1.0})
    with pytest.raises(CommitteeError, match=r"temperatures for \['tiny'\], which are not members"):
        pool.tempered({"tiny": 2.0})
    for value in (0.0, -1.0, float("nan")):  # scored 9.60% (T=0: every probability NaN), then saved in its card
        with pytest.raises(CommitteeError, match=f"member 'small': temperature {value!r} is not a finite number > 0"):
            pool.tempered({"small": value})


def test_a_guarantee_is_not_fitted_on_the_samples_a_pool_was_tempered_on():
    """What `EvalRequest` refuses (--guarantee with --temperature), the Python API ran: temperatures
    fitted on the calibration samples, then a Learn-then-Test guarantee certified on those same
    samples, which it assumes the members never saw."""
    from committee_tasks import Guarantee

    small, large = _members()
    pool = Pool.evaluate([small, large], _data(), options=ExecutionOptions(output_dtype="float32", progress=False))
    calib, evaluation = pool.split(0.5)
    guarantee, members = Guarantee("large", eps=5.0, delta=0.2), ["small", "large"]
    refused = r"a Guarantee needs members fixed before the calibration samples are seen; this pool's temperatures " \
              rf"were fitted on {len(calib.predictions.ids)} of its {len(calib.predictions.ids)} samples"
    with pytest.raises(CommitteeError, match=refused):
        calib.tempered(calib.fit_temperatures()).fit(members, guarantee)
    whole = pool.tempered(pool.fit_temperatures())  # the pool's views keep what it was tempered on
    with pytest.raises(CommitteeError, match="this pool's temperatures were fitted on"):
        whole.split(0.5)[0].fit(members, guarantee)
    fitted = evaluation.fit_temperatures()
    assert isinstance(fitted, dict) and set(fitted) == set(members)
    calib.tempered(fitted).fit(members, guarantee)  # fitted on other samples: certified as before
    calib.tempered(calib.fit_temperatures()).fit(members, Match("large"))  # no guarantee: no refusal


def test_a_member_put_back_in_training_mode_is_refused_not_run():
    """A notebook fine-tuning a member after its card was made: its BatchNorm would learn from
    the committee's batches and its outputs differ from the card's."""
    from committee_tasks import Cascade, load_committee

    small, large = _members()
    large.module = torch.nn.Sequential(large.module, torch.nn.BatchNorm1d(3))  # statistics to update
    large.module.eval()
    data = _data(40)
    pool = Pool.evaluate([small, large], data, options=ExecutionOptions(cache_dir="memory", progress=False))
    committee = load_committee(pool.card(Cascade(["small", "large"], [0.9])), members=[small, large])
    assert not committee.training
    before = {k: v.clone() for k, v in large.module.state_dict().items()}
    large.module.train()
    with pytest.raises(CommitteeError, match="member 'large' is in training mode .*call .eval\\(\\)"):
        committee(torch.as_tensor(data.inputs))
    assert all(torch.equal(before[k], v) for k, v in large.module.state_dict().items())  # nothing learned
    with pytest.raises(CommitteeError, match="member 'large' is in training mode"):
        Pool.evaluate([small, large], _data(41), options=ExecutionOptions(cache_dir="memory", progress=False))
    committee.eval()
    committee(torch.as_tensor(data.inputs))


def test_card_takes_a_member_name_and_refuses_none():
    small, large = _members()
    pool = Pool.evaluate([small, large], _data())
    assert pool.card("large").kind == "member"
    with pytest.raises(CommitteeError, match=r"no committee to make a card of: fit\(\) returns None"):
        pool.card(pool.fit(["small", "large"], Budget(macs=1)))


@pytest.mark.parametrize("targets, message", [
    (lambda y: [str(v) for v in y], r"top-1 needs class indices \(integers\), but the targets are <U1 values such as "
                                    r"'\d' \(sample '0'\): map class names to indices 0..2"),
    (lambda y: y[:, None], r"the targets have shape \(200, 1\): pass a 1-D array"),
    (lambda y: np.eye(3)[y], r"the targets have shape \(200, 3\): one-hot rows: pass targets.argmax\(1\)"),
    (lambda y: np.where(np.arange(len(y)) == 7, 3, y), r"1 targets are not class indices 0..2 of the members' 3 "
                                                       r"classes \(sample '7': 3\)"),
    (lambda y: np.where(np.arange(len(y)) < 2, -1, y), r"2 targets are not class indices 0..2 .*sample '0': -1"),
])
def test_targets_that_are_not_class_indices_are_refused_before_anything_runs(targets, message, monkeypatch):
    """They were scored anyway: strings and out-of-range indices as wrong, an (N, 1) column as an
    array of metrics, one-hot rows with a numpy broadcasting error."""
    from committee_tasks.engine import loop

    small, large = _members()
    data = _data()
    monkeypatch.setattr(loop, "_run", lambda *a, **k: pytest.fail("the loop ran"))
    with pytest.raises(CommitteeError, match=message):
        Pool.evaluate([small, large], ArrayDataset(data.inputs, targets(data.targets)))


def test_float_targets_holding_indices_are_taken_and_an_empty_pool_is_refused():
    small, large = _members()
    data = _data()
    as_float = Pool.evaluate([small], ArrayDataset(data.inputs, data.targets.astype(np.float32)))
    assert as_float.score("small").metric == Pool.evaluate([small], data).score("small").metric
    with pytest.raises(CommitteeError, match="no members to evaluate"):
        Pool.evaluate([], data)


def test_a_member_declaring_other_classes_than_it_outputs_is_refused():
    """Member.from_module(net, num_classes=5) of a 3-output net was scored as a 5-class member."""
    small, _ = _members()
    wrong = Member.from_module(small.module, name="wrong", num_classes=5)
    with pytest.raises(CommitteeError, match=r"member 'wrong' declares 5 classes but outputs shape \(\d+, 3\)"):
        Pool.evaluate([wrong], ArrayDataset(_data().inputs, np.zeros(200, dtype=np.int64)))


def test_a_module_ending_in_a_softmax_is_declared_or_warned_about(caplog):
    """A module whose forward ends in a softmax was softmaxed again, silently: its confidences
    flattened (no cascade exited early). outputs="probabilities" takes them as they are (its own
    cache key); left as logits, the first batch warns."""
    small, _ = _members()
    ending_in_softmax = torch.nn.Sequential(small.module, torch.nn.Softmax(dim=1))
    declared = Member.from_module(ending_in_softmax, name="small", outputs="probabilities")
    default = Member.from_module(ending_in_softmax, name="small")
    assert declared.fingerprint != default.fingerprint != small.fingerprint
    data = _data()
    with caplog.at_level("WARNING", logger="committee_tasks.core.members"):
        as_logits = Pool.evaluate([Member.from_module(small.module, name="small")], data)
        as_probabilities = Pool.evaluate([declared], data)
    assert "softmax" not in caplog.text
    np.testing.assert_allclose(as_probabilities.predictions.outputs["small"].astype(np.float32),
                               as_logits.predictions.outputs["small"].astype(np.float32), atol=1e-3)
    with caplog.at_level("WARNING", logger="committee_tasks.core.members"):
        Pool.evaluate([default], data)
    assert caplog.text.count("outputs probabilities already") == 1  # the first batch only
    assert 'outputs="probabilities"' in caplog.text
    # a zoo file's outputs object: a class map selects (and sizes) the classes
    mapped = Member.from_module(ending_in_softmax, name="two", outputs={"type": "probabilities", "class_map": [2, 0]})
    assert mapped.num_classes == 2
    with pytest.raises(CommitteeError, match="member 'x': outputs type 'softmax' is not one of"):
        Member.from_module(small.module, name="x", outputs="softmax")


def test_a_dataset_that_is_not_a_sample_dataset_is_refused_with_the_fix():
    small, _ = _members()
    pairs = [(torch.zeros(3, 4), 0), (torch.ones(3, 4), 1)]
    for data in (pairs, torch.utils.data.TensorDataset(torch.zeros(2, 3, 4), torch.zeros(2))):
        with pytest.raises(CommitteeError, match=r"evaluates a SampleDataset, got \w+.*ArrayDataset\(inputs, targets\)"):
            Pool.evaluate([small], data)


def test_a_member_of_more_classes_than_the_dataset_is_refused():
    """A 100-class module on the 10-class digits was scored silently (top-1 near 0)."""
    from committee_tasks import get_task

    digits = get_task("classification").build_dataset("digits", None, split="test")
    wide = Member.from_module(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 100)), name="wide")
    with pytest.raises(CommitteeError, match="has 10 classes but the members predict 100.*class map"):
        Pool.evaluate([wide], digits)


def test_a_result_prints_its_figures_not_its_per_sample_arrays():
    from committee_tasks import Cascade

    small, large = _members()
    pool = Pool.evaluate([small, large], _data(2000))
    text = repr(pool.score(Cascade(["small", "large"], [0.6])))
    assert len(text) < 300 and "metric=" in text and "samples=2000" in text and "exit_fractions=" in text


def test_a_card_made_in_python_carries_its_figures():
    """Pool.card wrote figures {} (the README says a card carries the figures it was chosen with)."""
    from committee_tasks import Cascade

    small, large = _members()
    pool = Pool.evaluate([small, large], _data())
    cascade = Cascade(["small", "large"], [0.6])
    figures, scored = pool.card(cascade).figures, pool.score(cascade)
    assert figures["metric"] == scored.metric and figures["samples"] == 200
    assert figures["exit_fractions"] == scored.exit_fractions and figures["macs_mean"] == scored.macs_mean
    assert pool.card(cascade, figures={"note": "mine"}).figures == {"note": "mine"}


def test_pools_and_committees_print_short_and_other_inputs_are_named(tmp_path):
    from committee_tasks import Cascade, CommitteeCard, load_committee

    small, large = _members()
    pool = Pool.evaluate([small, large], _data(40), options=ExecutionOptions(cache_dir="memory", progress=False))
    assert repr(pool) == "Pool(task='classification', members=['small', 'large'], samples=40, dataset='arrays')"
    cascade = Cascade("small,large", 0.75, combine="last")
    assert repr(cascade) == "Cascade(['small', 'large'], [0.75], combine='last')" and repr(Ensemble("small,large")) \
        == "Ensemble(['small', 'large'])"
    card = pool.card(cascade)
    assert load_committee(card.to_dict(), members=[small, large]).card.name == card.name  # its JSON as a dict
    with pytest.raises(CommitteeError, match="load_committee takes a CommitteeCard, a path to one or its JSON"):
        load_committee(42)
    report = tmp_path / "search.json"
    report.write_text('{"provenance": {}, "tables": []}')
    with pytest.raises(CommitteeError, match=r"search.json is not a committee card \(a report of tools/eval.py"):
        CommitteeCard.load(report)


def test_result_files_are_strict_json_and_read_back_infinite_thresholds(tmp_path):
    """A cascade stage no sample exits at has threshold inf: Python wrote a bare Infinity token,
    which JSON.parse, jq and strict parsers refuse."""
    import json

    from committee_tasks import Cascade, CommitteeCard, load_committee

    def strict(path):
        def refuse(token):
            raise ValueError(f"non-JSON token {token}")
        return json.loads(path.read_text(), parse_constant=refuse)

    small, large = _members()
    pool = Pool.evaluate([small, large], _data(40), options=ExecutionOptions(cache_dir="memory", progress=False))
    card = pool.card(Cascade(["small", "large"], [float("inf")]), figures={"spread": float("nan")})
    path = card.save(tmp_path / "card.json")
    assert strict(path)["thresholds"] == ["Infinity"] and strict(path)["figures"]["spread"] == "NaN"
    again = CommitteeCard.load(path)
    assert again.thresholds == (float("inf"),) and np.isnan(again.figures["spread"]) and again.name == card.name
    assert load_committee(path, members=[small, large])(torch.as_tensor(_data(40).inputs)).exit_stage.eq(1).all()


def test_a_calibration_dataset_that_is_the_evaluated_one_is_refused():
    """Its thresholds would be fitted on the samples they are scored on, every figure in-sample but
    labelled the evaluation split's (and the plot said 'the other 10,000 samples')."""
    from committee_tasks.api.options import CalibrationOptions

    small, large = _members()
    data = _data(40)
    pool = Pool.evaluate([small, large], data, options=ExecutionOptions(cache_dir="memory", progress=False))
    same = ArrayDataset(data.inputs.copy(), data.targets.copy(), name="again")  # another object, the same samples
    with pytest.raises(CommitteeError, match="--calibration-dataset again is the dataset being evaluated"):
        pool.calibration_and_evaluation(CalibrationOptions(dataset="again"), lambda options: same)
    other = _data(30)
    calib, evaluation = pool.calibration_and_evaluation(CalibrationOptions(dataset="other"), lambda options: other)
    assert len(calib.predictions.ids) == 30 and evaluation is pool
