"""Committee cards: a committee saved as JSON, loaded as a module that runs it with real early exit,
equal bit for bit to the executor and the cache, and refusing members that are not the card's."""
from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import torch

from committee_tasks import Cascade, CommitteeError, CommitteeExecutor, Ensemble, Member, Single
from committee_tasks.core.zoo import sha256_of
from committee_tasks.engine.inputs import preprocessed_batches
from committee_tasks.engine.runnable import CommitteeModule, load_committee
from committee_tasks.committees.cards import CARD_VERSION, CommitteeCard
from tests.test_executor import cached  # noqa: F401  (the digits test split through the cache)

NAMES = ["digits_cnn_s", "digits_cnn_m", "digits_cnn_l"]
TEMPERATURES = {"digits_cnn_s": 1.7, "digits_cnn_l": 0.8}
COMMITTEES = [
    (Cascade(NAMES, [0.95, 0.9]), {}),
    (Cascade(NAMES, [0.9, 0.8], confidence="margin", combine="last"), TEMPERATURES),
    (Ensemble(NAMES), TEMPERATURES),
    (Single("digits_cnn_m"), {}),
]


def card_of(committee, members, temperatures=None, **options) -> CommitteeCard:
    return CommitteeCard.from_committee(committee, "classification", members, temperatures, **options)


def member_like(member: Member, name: str | None = None, module=None, transform=None, weights=None) -> Member:
    """A member built by hand (in memory), from ``member`` with the given parts replaced."""
    return Member(name or member.name, module or copy.deepcopy(member.module), transform or member.transform,
                  weights or member.weights_sha256, member.num_classes, member.to_probs)


@pytest.mark.parametrize("committee, temperatures", COMMITTEES, ids=lambda c: getattr(c, "name", ""))
def test_card_round_trip(digits_members, tmp_path, committee, temperatures):
    figures = {"metric": np.float64(97.5), "metric_ci": np.array([96.0, 98.5]), "exit_fractions": [0.8, 0.1, 0.1]}
    card = card_of(committee, digits_members, temperatures, figures=figures,
                   dataset={"name": "digits-test", "fingerprint": "ab" * 32})
    path = card.save(tmp_path / "card.json")
    loaded = CommitteeCard.load(path)
    assert loaded == card
    assert json.loads(path.read_text())["card_version"] == CARD_VERSION
    assert loaded.figures["metric_ci"] == [96.0, 98.5]
    assert loaded.committee().name == committee.name == loaded.name
    assert loaded.temperatures == {n: temperatures.get(n, 1.0) for n in committee.members}
    assert [m.fingerprint for m in loaded.members] == [digits_members[n].fingerprint for n in committee.members]
    assert loaded.provenance["fingerprints"]["members"]["digits_cnn_m"] == digits_members["digits_cnn_m"].fingerprint


def test_cards_that_differ_beyond_their_name_get_their_own_files(digits_members, tmp_path):
    """A margin, a combine-last and a tempered variant of one cascade share its name; before their
    qualified names they were written to one file, each overwriting the last."""
    from committee_tasks.committees.cards import save_cards

    plain = card_of(Cascade(NAMES, [0.9, 0.8]), digits_members)
    variants = [plain, card_of(Cascade(NAMES, [0.9, 0.8], confidence="margin"), digits_members),
                card_of(Cascade(NAMES, [0.9, 0.8], combine="last"), digits_members),
                card_of(Cascade(NAMES, [0.9, 0.8]), digits_members, TEMPERATURES),
                card_of(Cascade(NAMES, [0.9, 0.8], confidence="margin", combine="last"), digits_members, TEMPERATURES)]
    assert len({c.name for c in variants}) == 1
    assert [c.qualified_name[len(plain.name):] for c in variants] == [
        "", " [margin]", " [combine last]", " [tempered]", " [margin, combine last, tempered]"]
    assert card_of(Ensemble(NAMES), digits_members, TEMPERATURES).qualified_name == "ensemble(" + "+".join(NAMES) + ") [tempered]"
    paths = save_cards({f"key {i}": c for i, c in enumerate(variants)}, tmp_path)
    assert [p.name for p in paths] == ["cascade_digits_cnn_s-digits_cnn_m-digits_cnn_l_0.9,0.8" + suffix + ".json" for suffix in
                                       ("", "_margin", "_combine_last", "_tempered", "_margin_combine_last_tempered")]
    assert [CommitteeCard.load(p) for p in paths] == variants
    with pytest.raises(CommitteeError, match=r"cards 'a' and 'b' differ but would both be written to .*tempered\.json"):
        save_cards({"a": variants[3], "b": card_of(Cascade(NAMES, [0.9, 0.8]), digits_members, {"digits_cnn_s": 2.0})},
                   tmp_path)


@pytest.mark.parametrize("committee, temperatures", COMMITTEES, ids=lambda c: getattr(c, "name", ""))
def test_module_equals_executor(classification, cached, committee, temperatures):  # noqa: F811
    members, dataset, preds = cached
    module = load_committee(card_of(committee, members, temperatures), members=members, device="cpu")
    executor = CommitteeExecutor(committee, members, classification, device="cpu", temperatures=temperatures)
    batches = preprocessed_batches(dataset, list(members.values()), preds.ids, 150, batch_size=75)
    for batch in batches:
        combined, exit_stage, macs = executor.run_batch(batch)
        for out in (module(batch), module(next(iter(batch.values())))):  # keyed, and one shared tensor
            np.testing.assert_array_equal(out.probs.numpy(), combined)
            np.testing.assert_array_equal(out.exit_stage.numpy(), exit_stage)
            np.testing.assert_array_equal(out.macs.numpy(), macs)
    raw = [dataset[i].data for i in range(75)]  # decoded images, preprocessed by each member itself
    np.testing.assert_array_equal(module.predict_samples(raw).probs.numpy(), executor.run_batch(batches[0])[0])
    samples = [dataset[i] for i in range(75)]  # the dataset's own Samples
    np.testing.assert_array_equal(module.predict_samples(samples).probs.numpy(), executor.run_batch(batches[0])[0])


@pytest.mark.parametrize("confidence", ["max_prob", "margin", "frac_above_0.5"])
def test_a_loaded_committee_pickles_and_runs_the_same(cached, confidence):  # noqa: F811
    """torch.save of the module, and spawned worker processes, pickle it: its confidence was a
    closure, which pickle refused."""
    import pickle

    members, dataset, preds = cached
    module = load_committee(card_of(Cascade(NAMES, [0.9, 0.8], confidence=confidence), members, TEMPERATURES),
                            members=members, device="cpu")
    batch = preprocessed_batches(dataset, list(members.values()), preds.ids, 60, batch_size=60)[0]
    again = pickle.loads(pickle.dumps(module))
    out, out_again = module(batch), again(batch)
    for field in ("probs", "exit_stage", "macs"):
        np.testing.assert_array_equal(getattr(out, field).numpy(), getattr(out_again, field).numpy())


def test_temperatures_are_finite_and_positive(digits_members):
    """A temperature of 0 gave NaN probabilities and a negative one inverted them, without a word."""
    for value in (0, -1.0, float("nan"), float("inf"), True, "hot"):
        with pytest.raises(CommitteeError, match="is not a finite number > 0"):
            card_of(Cascade(NAMES, [0.9, 0.8]), digits_members, {"digits_cnn_s": value})
    assert card_of(Cascade(NAMES, [0.9, 0.8]), digits_members, {"digits_cnn_s": np.float32(1.5)}).temperatures == {
        "digits_cnn_s": 1.5, "digits_cnn_m": 1.0, "digits_cnn_l": 1.0}


@pytest.mark.parametrize("committee, temperatures", COMMITTEES, ids=lambda c: getattr(c, "name", ""))
def test_module_predict_stream_gathers_later_stages_and_equals_forward(cached, committee, temperatures):  # noqa: F811
    """Over a stream, each batch comes back in order, as `forward` gives it, once its rows are
    done: a cascade's later stages run on full batches gathered across batches, so a batch comes
    back after later ones were read, at most ``max_wait`` batches late when that is given."""
    members, dataset, preds = cached
    module = load_committee(card_of(committee, members, temperatures), members=members, device="cpu")
    batches = preprocessed_batches(dataset, list(members.values()), preds.ids, len(preds.ids), batch_size=32)
    read = []

    def reading():
        for i, batch in enumerate(batches):
            read.append(i)
            yield batch if i % 2 else next(iter(batch.values()))  # keyed, and one shared tensor

    def came_back(max_wait):
        """How many batches had been read when each batch came back."""
        read.clear()
        returned = []
        for i, out in enumerate(module.predict_stream(reading(), max_wait=max_wait)):
            returned.append(len(read))
            expected = module(batches[i])
            np.testing.assert_array_equal(out.probs.numpy(), expected.probs.numpy())
            np.testing.assert_array_equal(out.exit_stage.numpy(), expected.exit_stage.numpy())
            np.testing.assert_array_equal(out.macs.numpy(), expected.macs.numpy())
        assert len(returned) == len(batches)
        return returned

    unbounded, bounded, alone = came_back(None), came_back(2), came_back(0)
    assert all(r <= i + 3 for i, r in enumerate(bounded)), bounded  # at most 2 batches late
    assert alone == list(range(1, len(batches) + 1))  # each batch on its own
    if isinstance(committee, Cascade):  # its first batch waited for later ones to fill a later stage
        assert unbounded[0] > 3 and bounded[0] == 3, (unbounded, bounded)
    else:
        assert unbounded == bounded == alone
    with pytest.raises(CommitteeError, match="the batch is empty"):
        list(module.predict_stream([batches[0], {k: v[:0] for k, v in batches[0].items()}]))
    if isinstance(committee, Cascade):
        with pytest.raises(CommitteeError, match="max_wait -1: pass a number of batches"):
            list(module.predict_stream(batches, max_wait=-1))


def test_module_figures_equal_cache(classification, cached, tmp_path):  # noqa: F811
    """A card saved after the cache-based evaluation, loaded by zoo name, gives the same figures."""
    members, dataset, preds = cached
    cascade = Cascade(NAMES, [0.95, 0.9])
    expected = cascade.evaluate(preds, classification)
    figures = {"metric": expected.metric, "exit_fractions": expected.exit_fractions, "macs_mean": expected.macs_mean}
    path = card_of(cascade, members, figures=figures).save(tmp_path / "card.json")
    module = load_committee(path, device="cpu")  # members built from the zoo by name
    assert isinstance(module, CommitteeModule) and len(list(module.parameters())) > 0
    batches = preprocessed_batches(dataset, module.members, preds.ids, len(preds.ids), batch_size=128)
    outs = [module(batch) for batch in batches]
    probs, stages, macs = (torch.cat(parts).numpy() for parts in zip(*((o.probs, o.exit_stage, o.macs) for o in outs)))
    metric = classification.metric(classification.sample_statistics(probs, preds.targets).sum(axis=0))
    fractions = [float((stages == k).mean()) for k in range(len(NAMES))]
    card = CommitteeCard.load(path)
    assert metric == expected.metric == card.figures["metric"]
    assert fractions == expected.exit_fractions == card.figures["exit_fractions"]
    assert 0 < fractions[0] < 1
    assert float(macs.mean()) == expected.macs_mean
    np.testing.assert_array_equal(probs, expected.combined)
    np.testing.assert_array_equal(stages, expected.exit_stage)


def test_module_follows_the_cards_output_dtype(classification, cached):  # noqa: F811
    members, dataset, preds = cached
    batch = preprocessed_batches(dataset, list(members.values()), preds.ids, 64, batch_size=64)[0]
    card = card_of(Ensemble(NAMES), members, output_dtype="float32")
    probs = load_committee(card, members=members, device="cpu")(batch).probs.numpy()
    run = {dtype: CommitteeExecutor(Ensemble(NAMES), members, classification, device="cpu", output_dtype=dtype)
           .run_batch(batch)[0] for dtype in ("float16", "float32")}
    np.testing.assert_array_equal(probs, run["float32"])
    assert not np.array_equal(probs, run["float16"])


def test_refuses_a_member_it_cannot_find(classification, digits_members):
    own = member_like(digits_members["digits_cnn_m"], name="my_net")  # an in-memory model, not in the zoo
    card = card_of(Cascade(["digits_cnn_s", "my_net"], 0.9), {"digits_cnn_s": digits_members["digits_cnn_s"],
                                                             "my_net": own})
    with pytest.raises(CommitteeError, match=r"'my_net'.*not in the zoo of task 'classification'.*members=\{'my_net'"):
        load_committee(card, device="cpu")
    with pytest.raises(CommitteeError, match=r"'my_net' of the card .* was not given"):
        CommitteeModule(card, {"digits_cnn_s": digits_members["digits_cnn_s"]}, classification, device="cpu")
    assert load_committee(card, members={"my_net": own}, device="cpu").members[1] is own


def test_refuses_a_changed_member(classification, digits_members, tmp_path):
    original = digits_members["digits_cnn_m"]
    card = card_of(Cascade(["digits_cnn_s", "digits_cnn_m"], 0.9), digits_members)
    perturbed = copy.deepcopy(original.module)
    with torch.no_grad():
        next(perturbed.parameters()).add_(0.01)
    torch.save(perturbed.state_dict(), tmp_path / "perturbed.pt")
    retrained = member_like(original, module=perturbed, weights=sha256_of(tmp_path / "perturbed.pt"))
    before, after = original.fingerprint[:16], retrained.fingerprint[:16]
    with pytest.raises(CommitteeError, match=rf"'digits_cnn_m' has fingerprint {after}.* {before}: its weights "
                                             r"changed.*re-run the search or fit.*original weights"):
        load_committee(card, members={"digits_cnn_m": retrained}, device="cpu")

    class Rescaled(type(original.transform)):
        def __repr__(self) -> str:
            return "Rescaled" + super().__repr__()
    with pytest.raises(CommitteeError, match=r"'digits_cnn_m'.*its preprocessing changed"):
        load_committee(card, members={"digits_cnn_m": member_like(original, transform=Rescaled())}, device="cpu")
    bare = card_of(card.committee(), {n: m.fingerprint for n, m in digits_members.items()})
    with pytest.raises(CommitteeError, match=r"its weights or its preprocessing changed"):
        load_committee(bare, members={"digits_cnn_m": retrained}, device="cpu")


def test_module_names_what_is_missing(digits_members):
    module = CommitteeModule(card_of(Ensemble(NAMES[:2]), digits_members), digits_members, device="cpu")
    with pytest.raises(CommitteeError, match=r"no input batch for the preprocessing 'DigitsTransform"):
        module({"other": torch.zeros(2, 1, 8, 8)})
    with pytest.raises(CommitteeError, match=r"inputs of type tuple: pass a tensor, or a dict .* \(x for x, _ in loader\)"):
        next(module.predict_stream([(torch.zeros(2, 1, 8, 8), torch.zeros(2))]))
    with pytest.raises(CommitteeError, match=r"no samples given"):
        module.predict_samples([])
    with pytest.raises(CommitteeError, match=r"sample 1 of 2: wrong size: its input has shape \(1, 16, 16\) but "
                                             r"digits_cnn_s, digits_cnn_m take \(1, 8, 8\)"):
        module.predict_samples([np.zeros((8, 8), np.float32), np.zeros((16, 16), np.float32)])  # never run at 16x16
    with pytest.raises(CommitteeError, match=r"the card is for task 'classification', not 'video'"):
        load_committee(module.card, task=type("Video", (), {"name": "video"})(), device="cpu")


def written(tmp_path, card: dict, change) -> str:
    data = copy.deepcopy(card)
    change(data)
    path = tmp_path / "card.json"
    path.write_text(json.dumps(data))
    return str(path)


@pytest.mark.parametrize("change, message", [
    (lambda d: d.update(card_version=7), r"card_version 7, but this committee-tasks reads card_version 1"),
    (lambda d: d.pop("card_version"), r"card_version None"),
    (lambda d: d.pop("thresholds"), r"missing field\(s\) \['thresholds'\]"),
    (lambda d: d.update(threshold=0.5), r"unknown field\(s\) \['threshold'\]"),
    (lambda d: d["members"][1].pop("fingerprint"), r"member 1: missing field\(s\) \['fingerprint'\]"),
    (lambda d: d["members"][0].update(weight="x"), r"member 0: unknown field\(s\) \['weight'\]"),
    (lambda d: d.update(kind="bagging"), r"card kind 'bagging' is not one of"),
    (lambda d: d.update(kind="ensemble"), r"a card of kind 'ensemble' takes no thresholds"),
    (lambda d: d.update(thresholds=[0.5, 0.5]), r"needs 1 thresholds"),
    (lambda d: d.update(confidence="certainty"), r"unknown confidence 'certainty'"),
], ids=["version", "no-version", "missing", "extra", "member-missing", "member-extra", "kind", "kind-fields",
         "thresholds",
        "confidence"])
def test_load_errors_name_the_field_and_file(digits_members, tmp_path, change, message):
    card = card_of(Cascade(["digits_cnn_s", "digits_cnn_m"], 0.9), digits_members).to_dict()
    path = written(tmp_path, card, change)
    with pytest.raises(CommitteeError, match=message) as err:
        CommitteeCard.load(path)
    assert path in str(err.value)


def test_load_errors_for_missing_and_broken_files(tmp_path):
    with pytest.raises(CommitteeError, match=r"nothere.json not found"):
        CommitteeCard.load(tmp_path / "nothere.json")
    (tmp_path / "broken.json").write_text('{"card_version": 1,')
    with pytest.raises(CommitteeError, match=r"broken.json is not readable JSON"):
        CommitteeCard.load(tmp_path / "broken.json")
    (tmp_path / "list.json").write_text("[1, 2]")
    with pytest.raises(CommitteeError, match=r"list.json: a committee card is a JSON object"):
        CommitteeCard.load(tmp_path / "list.json")


def test_card_holds_only_json_and_named_confidences(digits_members):
    with pytest.raises(CommitteeError, match=r"figures must be JSON data"):
        card_of(Ensemble(NAMES), digits_members, figures={"result": object()})
    custom = Cascade(NAMES[:2], 0.9, confidence=lambda probs: probs.max(1))
    with pytest.raises(CommitteeError, match=r"cascade's confidence, one of max_prob, .*custom confidence function"):
        card_of(custom, digits_members)


def test_module_takes_batches_as_the_pool_did_and_refuses_other_sizes_and_dtypes(cached):  # noqa: F811
    members, dataset, preds = cached
    module = load_committee(card_of(Cascade(NAMES, [0.95, 0.9]), members), members=members, device="cpu")
    (batch,) = preprocessed_batches(dataset, list(members.values()), preds.ids, 16, batch_size=16)
    (x,) = batch.values()
    with pytest.raises(CommitteeError, match=r"a torch.float64 batch for .*: its members' preprocessing gives float32 "
                                             r"tensors: pass batch.float\(\)"):
        module(x.double())
    bigger = torch.nn.functional.interpolate(x, scale_factor=2)
    with pytest.raises(CommitteeError, match=r"the batch does not fit: wrong size: each input has shape \(1, 16, 16\) "
                                             r"but digits_cnn_s, digits_cnn_m, digits_cnn_l take \(1, 8, 8\)"):
        module(bigger)
    # members made from modules without a transform took float32 of any array (AsTensor): so does the card
    torch.manual_seed(0)
    own = {n: Member.from_module(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10)), name=n)
           for n in ("a", "b")}
    mine = load_committee(card_of(Cascade(["a", "b"], [0.5]), own), members=own, device="cpu")
    torch.testing.assert_close(mine(x.double()).probs, mine(x).probs, rtol=0, atol=0)
