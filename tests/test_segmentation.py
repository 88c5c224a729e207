"""The segmentation task end to end: tiny SegFormers (random weights saved as real mmseg
checkpoints, loaded through the zoo path) on a tiny Cityscapes-layout dataset, checked against
mmseg's own IoUMetric and against statistics recomputed from the full probability maps."""
from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("mmseg", reason="the segmentation extra is not installed (pip install '.[segmentation]')")

from committee_tasks.engine.cache import PredictionCache  # noqa: E402
from committee_tasks.cli.eval import main as eval_main  # noqa: E402
from committee_tasks.core.errors import CommitteeError  # noqa: E402
from committee_tasks.engine.loop import LoopOptions, evaluate_pool  # noqa: E402
from committee_tasks.core.macs import count_macs  # noqa: E402
from committee_tasks_builtin.segmentation import SegmentationTask  # noqa: E402
from committee_tasks_builtin.segmentation.datasets import load_segmentation_dataset  # noqa: E402
from tests.conftest import was_measured  # noqa: E402
from tests.segmentation_fixtures import HEIGHT, WIDTH, make_dataset, make_zoo, write_image  # noqa: E402

A, B = "tiny_segformer_a", "tiny_segformer_b"
C = 19


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    logging.getLogger("mmengine").setLevel(logging.WARNING)
    folder = tmp_path_factory.mktemp("seg")
    zoo, weights = make_zoo(folder)
    return {"folder": folder, "root": make_dataset(folder / "data"), "zoo": zoo, "weights": weights}


def task_with_zoo(world) -> SegmentationTask:
    task = SegmentationTask()
    task.add_zoo_file(world["zoo"])
    return task


def run_eval(world, *args, root=None, json_name="out.json"):
    out = world["folder"] / json_name
    argv = ["--task", "segmentation", "--dataset", "cityscapes", "--data-root", str(root or world["root"]),
            "--zoo", str(world["zoo"]), "--weights-dir", str(world["weights"]),
            "--cache-dir", str(world["folder"] / "cache"), "--workers", "0", "--no-progress",
            "--measure-samples", "0", "--json", str(out), *args]
    assert eval_main(argv) == 0
    return json.loads(out.read_text())


@pytest.fixture(scope="module")
def full_maps(world):
    """Every member's full probability maps and the labels, computed directly (no cache)."""
    task = task_with_zoo(world)
    dataset = load_segmentation_dataset("cityscapes", world["root"])
    members = {m: task.build_member(m, world["weights"]) for m in (A, B)}
    probs, labels = {A: [], B: []}, []
    for i in range(len(dataset)):
        sample = dataset[i]
        labels.append(sample.target.numpy())
        for m, member in members.items():
            with torch.no_grad():
                probs[m].append(member.module(sample.data[None]).numpy()[0])
    return dataset.ids, probs, labels


def numpy_stats(prob: np.ndarray, label: np.ndarray) -> np.ndarray:
    """mmseg's intersect_and_union, in plain numpy."""
    pred = prob.argmax(0)
    valid = label != 255
    p, t = pred[valid], label[valid]
    inter = np.bincount(t[p == t], minlength=C)
    area_p, area_t = np.bincount(p, minlength=C), np.bincount(t, minlength=C)
    return np.concatenate([inter, area_p + area_t - inter, area_p, area_t]).astype(np.float64)


def mmseg_miou(preds: list[np.ndarray], labels: list[np.ndarray]) -> float:
    from mmseg.evaluation import IoUMetric

    metric = IoUMetric(iou_metrics=["mIoU"])
    metric.dataset_meta = {"classes": [f"c{i}" for i in range(C)]}
    for pred, label in zip(preds, labels):
        metric.process({}, [{"pred_sem_seg": {"data": torch.from_numpy(pred)[None]},
                             "gt_sem_seg": {"data": torch.from_numpy(label)[None]}}])
    return metric.compute_metrics(metric.results)["mIoU"]


def mmseg_per_class(preds: list[np.ndarray], labels: list[np.ndarray]) -> dict[str, np.ndarray]:
    """IoU and Acc per class in %, as mmseg's IoUMetric tabulates them (its per-class table)."""
    from mmseg.evaluation import IoUMetric

    metric = IoUMetric(iou_metrics=["mIoU"])
    metric.dataset_meta = {"classes": [f"c{i}" for i in range(C)]}
    for pred, label in zip(preds, labels):
        metric.process({}, [{"pred_sem_seg": {"data": torch.from_numpy(pred)[None]},
                             "gt_sem_seg": {"data": torch.from_numpy(label)[None]}}])
    areas = [sum(result[k] for result in metric.results) for k in range(4)]
    figures = IoUMetric.total_area_to_metrics(*areas, ["mIoU"])
    return {name: 100 * np.asarray(figures[name], dtype=np.float64) for name in ("IoU", "Acc")}


def test_cached_subset_statistics_equal_recomputation_from_full_maps(world, full_maps):
    ids, probs, labels = full_maps
    task = task_with_zoo(world)
    members = [task.build_member(m, world["weights"]) for m in (A, B)]
    dataset = load_segmentation_dataset("cityscapes", world["root"])
    preds, _ = evaluate_pool(task, members, dataset, PredictionCache(world["folder"] / "cache-direct"),
                             options=LoopOptions(num_workers=0, progress=False, batch_size=2))
    assert list(preds.ids) == list(ids) and not preds.outputs  # statistics only, no maps cached
    for subset in ([A], [B], [A, B]):
        record = preds.record(subset)
        for i in range(len(ids)):
            combined = sum(probs[m][i] for m in subset) / len(subset)
            np.testing.assert_array_equal(record.statistics[i], numpy_stats(combined, labels[i]))
            assert record.confidence["max_prob"][i] == pytest.approx(combined.max(0).mean(), rel=1e-5)
            assert record.confidence["frac_above_0.9"][i] == pytest.approx((combined.max(0) >= 0.9).mean(), abs=1e-6)


def test_miou_of_members_and_ensemble_equal_mmseg_iou_metric(world, full_maps):
    ids, probs, labels = full_maps
    report = run_eval(world, "--ensemble", f"{A},{B}")
    rows = {r["name"]: r for r in report["rows"]}
    for name, maps in ((A, probs[A]), (B, probs[B]), (f"ensemble({A}+{B})", [(a + b) / 2 for a, b in zip(probs[A], probs[B])])):
        expected = mmseg_miou([m.argmax(0) for m in maps], labels)
        assert rows[name]["metric"] == pytest.approx(expected, abs=0.01)  # mmseg rounds to 2 decimals
        per_image = np.mean([np.nanmean(np.where(s[C:2 * C] > 0, s[:C] / np.maximum(s[C:2 * C], 1), np.nan))
                             for s in (numpy_stats(m, l) for m, l in zip(maps, labels))]) * 100
        assert abs(rows[name]["metric"] - per_image) > 1e-6  # summed over the dataset, not a mean of images
        per_class = {k: np.array(v, dtype=np.float64) for k, v in rows[name]["per_class"].items()}  # None: NaN
        for figure, values in mmseg_per_class([m.argmax(0) for m in maps], labels).items():
            np.testing.assert_allclose(per_class[figure], values, rtol=1e-6, equal_nan=True)
        assert np.isnan(per_class["IoU"]).any() and np.nanmean(per_class["IoU"]) == pytest.approx(rows[name]["metric"])
    assert len(report["classes"]) == C and report["classes"][0] == "road"  # Cityscapes' names, in index order


def test_cascade_matches_numpy_reference(world, full_maps):
    ids, probs, labels = full_maps
    conf = np.array([p.max(0).mean() for p in probs[A]])
    values = np.sort(conf)
    threshold = float((values[2] + values[3]) / 2)  # halfway: some images exit, some go on
    report = run_eval(world, "--cascade", f"{A},{B}", "--thresholds", f"{threshold}", json_name="cascade.json")
    row = next(r for r in report["rows"] if r["kind"] == "cascade")
    exits = conf >= threshold
    maps = [pa if e else (pa + pb) / 2 for pa, pb, e in zip(probs[A], probs[B], exits)]
    summed = sum(numpy_stats(m, l) for m, l in zip(maps, labels))
    iou = np.where(summed[C:2 * C] > 0, summed[:C] / np.maximum(summed[C:2 * C], 1), np.nan)
    assert row["metric"] == pytest.approx(100 * np.nanmean(iou))
    assert row["exit_fractions"] == pytest.approx([exits.mean(), 1 - exits.mean()])
    macs_a, macs_b = (next(r for r in report["rows"] if r["name"] == m)["macs_mean"] for m in (A, B))
    assert row["macs_mean"] == pytest.approx(macs_a + (1 - exits.mean()) * macs_b)


def test_macs_count_every_window_of_sliding_inference(world):
    task = task_with_zoo(world)
    member = task.build_member(B, world["weights"])
    image = torch.zeros(1, 3, HEIGHT, WIDTH, dtype=torch.uint8)
    _, macs = member.predict_with_cost(image)
    seg = member.module
    window = count_macs(seg.model, torch.zeros(1, 3, 32, 32))  # one 32x32 window
    assert seg.mode == "slide" and macs[0] == 3 * window  # 64x32 input, stride 24: 3 windows


def test_bad_images_are_skipped_and_counted(world, tmp_path):
    root = tmp_path / "data"
    shutil.copytree(world["root"], root)
    labels = root / "gtFine" / "val" / "frankfurt"
    (labels / "frankfurt_000000_000001_gtFine_labelTrainIds.png").unlink()  # missing label file
    write_image(root, "frankfurt_000000_000100", seed=100)
    from PIL import Image

    Image.fromarray(np.zeros((HEIGHT // 2, WIDTH), np.uint8)).save(labels / "frankfurt_000000_000100_gtFine_labelTrainIds.png")
    bad = np.zeros((HEIGHT, WIDTH), np.uint8)
    bad[0, 0] = 40  # not a Cityscapes train id
    write_image(root, "frankfurt_000000_000101", seed=101, label=bad)
    report = run_eval(world, "--ensemble", f"{A},{B}", root=root, json_name="bad.json")
    skipped = report["skipped"]
    assert "missing" in next(v for k, v in skipped.items() if "000001" in k)
    assert "does not match the image" in next(v for k, v in skipped.items() if "000100" in k)
    assert "class ids [40]" in next(v for k, v in skipped.items() if "000101" in k)
    assert report["samples"] == 6 - 1  # 6 good images + 2 new, less 3 skipped


def test_models_needing_compiled_ops_fail_clearly():
    task = SegmentationTask()
    name = next(n for n in task.list_models("ccnet_*cityscapes*"))
    with pytest.raises(CommitteeError, match="CrissCrossAttention"):
        task.model_entry(name).builder()


def test_metafile_zoo_and_offline_error(monkeypatch):
    task = SegmentationTask()
    entry = task.model_entry("segformer_mit-b0_8xb1-160k_cityscapes-1024x1024")
    assert entry.num_classes == 19 and entry.metrics["mIoU"] == 76.54
    assert entry.weights.url.startswith("https://download.openmmlab.com/") and len(entry.weights.sha256) == 8

    def offline(*args, **kwargs):
        raise OSError("network unreachable")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    folder = Path(torch.hub.get_dir()) / "checkpoints"
    with pytest.raises(CommitteeError, match=f"Put the file '{entry.weights.file_name}' in {folder}"):
        task.build_member("segformer_mit-b0_8xb1-160k_cityscapes-1024x1024")


def test_a_users_config_is_part_of_the_cache_key(world, tmp_path):
    """Two zoo-file entries with one checkpoint and configs differing in test_cfg (sliding window
    or whole image) predict differently, so they never share cached outputs; nor does a config
    edited between runs. mmseg's shipped configs (pinned with mmseg) stay keyed as they were."""
    config = tmp_path / "b.py"
    shutil.copy(world["folder"] / "configs" / f"{B}.py", config)
    whole = tmp_path / "b_whole.py"
    whole.write_text(config.read_text().replace("dict(mode='slide', crop_size=(32, 32), stride=(24, 24))",
                                                "dict(mode='whole')"))
    zoo = tmp_path / "zoo.json"
    zoo.write_text(json.dumps({"models": [
        {"name": "slide", "config": "b.py", "weights": f"{B}.pth", "dataset": "cityscapes"},
        {"name": "whole", "config": "b_whole.py", "weights": f"{B}.pth", "dataset": "cityscapes"}]}))
    task = SegmentationTask()
    task.add_zoo_file(zoo)
    slide = task.describe_member("slide", world["weights"]).fingerprint
    assert slide != task.describe_member("whole", world["weights"]).fingerprint
    config.write_text(config.read_text().replace("stride=(24, 24)", "stride=(16, 16)"))
    edited = task.describe_member("slide", world["weights"])
    assert edited.fingerprint != slide
    assert edited.build().fingerprint == edited.fingerprint  # built as described
    shipped = SegmentationTask().model_entry("segformer_mit-b0_8xb1-160k_cityscapes-1024x1024")
    assert "config" not in shipped.variant


def test_segformer_b0_macs_at_512():
    """The SegFormer paper: MiT-B0 at 512x512 (ADE20K head) 8.4 GMACs."""
    model = SegmentationTask().model_entry("segformer_mit-b0_8xb2-160k_ade20k-512x512").builder().eval()
    macs = count_macs(model, torch.zeros(1, 3, 512, 512))
    assert abs(macs / 8.4e9 - 1) < 0.01, macs


def test_search_works_from_statistics(world, tmp_path):
    from committee_tasks.cli.search import main as search_main

    out = tmp_path / "search.json"
    assert search_main(["--task", "segmentation", "--dataset", "cityscapes", "--data-root", str(world["root"]),
                        "--zoo", str(world["zoo"]), "--weights-dir", str(world["weights"]), "--pool", f"{A},{B}",
                        "--workers", "0", "--no-progress", "--cache-dir", str(world["folder"] / "cache"),
                        "--confidence", "max_prob,frac_above_0.9", "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["task"] == "segmentation" and report["metric_name"] == "mIoU"
    assert any(p["kind"] == "ensemble" for p in report["points"]) and len(report["comparison"]) == 2
    from committee_tasks.cli.report import main as report_main

    assert report_main([str(out), "--out", str(tmp_path / "report")]) == 0
    table = next((tmp_path / "report").glob("*.md")).read_text()
    assert "segmentation" in table and "mIoU" in table and B in table
    with pytest.raises(CommitteeError, match=r"temperature scaling \(--temperature\) needs cached probabilities"):
        from committee_tasks.committees.predictions import PoolPredictions

        PoolPredictions(np.array(["a"]), np.zeros(1), {}, {A: np.ones(1)}, subsets={}).tempered({A: 2.0})


def test_guarantee_refuses_a_metric_that_is_not_a_mean(world, capsys):
    argv = ["--task", "segmentation", "--data-root", str(world["root"]), "--zoo", str(world["zoo"]),
            "--weights-dir", str(world["weights"]), "--cache-dir", str(world["folder"] / "cache"), "--workers", "0",
            "--no-progress", "--measure-samples", "0", "--cascade", f"{A},{B}", "--guarantee", "1,0.1",
            "--reference", B]
    assert eval_main(argv) == 2
    assert "mIoU) is not a mean of per-sample scores" in capsys.readouterr().err


def test_tools_eval_script_runs_segmentation(world, tmp_path):
    import subprocess
    import sys

    from tests.conftest import REPO

    out = tmp_path / "script.json"
    result = subprocess.run(
        [sys.executable, str(REPO / "tools" / "eval.py"), "--task", "segmentation", "--dataset", "cityscapes",
         "--data-root", str(world["root"]), "--zoo", str(world["zoo"]), "--weights-dir", str(world["weights"]),
         "--ensemble", f"{A},{B}", "--cascade", f"{A},{B}", "--thresholds", "0.5",
         "--cache-dir", str(tmp_path / "cache"), "--workers", "1", "--no-progress", "--json", str(out)],
        capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    rows = json.loads(out.read_text())["rows"]
    assert [r["kind"] for r in rows] == ["member", "member", "ensemble", "cascade"]
    assert all(was_measured(r) for r in rows) and "sliding window (32, 32)" in result.stdout
    header = f"| IoU per class (%) | {A} | {B} | ensemble({A}+{B}) | {rows[3]['name']} |"
    assert header in result.stdout and "\n| road | " in result.stdout  # a class per line, a column per row


def test_the_generic_folder_reads_the_cityscapes_layout_as_mmseg_does(world):
    """The same files through dataset 'folder' (mmseg's img_suffix / seg_map_suffix as options)
    give the same samples and the same figures as mmseg's CityscapesDataset."""
    options = ["--data-option", "images=leftImg8bit/{split}", "--data-option", "labels=gtFine/{split}",
               "--data-option", "image_suffix=_leftImg8bit.png", "--data-option", "num_classes=19",
               "--data-option", "label_name={stem}_gtFine_labelTrainIds.png", "--split", "val"]
    generic = run_eval(world, "--ensemble", f"{A},{B}", "--dataset", "folder", *options, json_name="folder.json")
    mmseg = run_eval(world, "--ensemble", f"{A},{B}", json_name="cityscapes.json")
    assert generic["samples"] == mmseg["samples"] == 6 and not generic["skipped"]
    assert [(r["name"], r["metric"]) for r in generic["rows"]] == [(r["name"], r["metric"]) for r in mmseg["rows"]]
    task = task_with_zoo(world)
    folder = task.build_dataset("folder", world["root"], split="val", **task.read_dataset_options("folder", {
        "images": "leftImg8bit/{split}", "labels": "gtFine/{split}", "image_suffix": "_leftImg8bit.png",
        "label_name": "{stem}_gtFine_labelTrainIds.png", "num_classes": 19}))
    reference = load_segmentation_dataset("cityscapes", world["root"])
    assert list(folder.ids) == list(reference.ids)
    for i in (0, 5):
        mine, theirs = folder[i], reference[i]
        assert mine.id == theirs.id and torch.equal(mine.data, theirs.data) and torch.equal(mine.target, theirs.target)


@pytest.fixture(scope="module")
def mixed_sizes(world):
    """Images of three sizes, as ADE20K's differ: two runs of 64x32, one of 48x40, one 40x24."""
    root = world["folder"] / "mixed"
    sizes = [(64, 32), (64, 32), (48, 40), (48, 40), (64, 32), (40, 24)]
    for i, size in enumerate(sizes):
        write_image(root, f"frankfurt_000001_{i:06d}", seed=10 + i, size=size)
    return root, sizes


def test_live_committees_keep_each_images_own_map_size(world, mixed_sizes):
    """Run live over images of different sizes (batch 1), a cascade and an ensemble give one map
    per image at that image's size, gathered or batch by batch, equal to running each image on its
    own."""
    from committee_tasks.committees.scoring import Cascade, Ensemble
    from committee_tasks.engine.executor import CommitteeExecutor
    from committee_tasks.engine.inputs import preprocessed_batches

    root, sizes = mixed_sizes
    task = task_with_zoo(world)
    dataset = load_segmentation_dataset("cityscapes", root)
    members = {m: task.build_member(m, world["weights"]) for m in (A, B)}
    batches = preprocessed_batches(dataset, list(members.values()), dataset.ids, len(dataset.ids), 1)
    with torch.no_grad():
        first = [members[A].module(next(iter(b.values()))).numpy() for b in batches]
    confidence = np.concatenate([Cascade([A, B], 0.0).confidence_fn(p) for p in first])
    threshold = float(np.median(confidence))  # some images exit at the first member, some go on
    for committee in (Cascade([A, B], threshold), Ensemble([A, B])):
        alone = [CommitteeExecutor(committee, members, task, device="cpu").run_batch(b) for b in batches]
        for mode in ("gathered", "per-batch"):
            live = CommitteeExecutor(committee, members, task, device="cpu", later_stages=mode).run(batches, warmup=0)
            assert [m.shape for m in live.combined] == [(C, h, w) for w, h in sizes]
            for got, (combined, stage, macs) in zip(live.combined, alone):
                np.testing.assert_array_equal(got, combined[0])
            np.testing.assert_array_equal(live.exit_stage, np.concatenate([a[1] for a in alone]))
            np.testing.assert_array_equal(live.macs, np.concatenate([a[2] for a in alone]))
        if isinstance(committee, Cascade):
            assert 0 < (live.exit_stage == 0).sum() < len(sizes)


@pytest.mark.parametrize("later_stages", ["gathered", "per-batch"])
def test_committees_are_measured_over_images_of_different_sizes(world, mixed_sizes, later_stages):
    """The CLI times every row over images of different sizes (it failed putting their maps together)."""
    root, sizes = mixed_sizes
    report = run_eval(world, "--ensemble", f"{A},{B}", "--cascade", f"{A},{B}", "--thresholds", "0.5",
                      "--measure-samples", "4", "--measure-rounds", "1", "--later-stages", later_stages,
                      root=root, json_name=f"mixed-{later_stages}.json")
    assert [r["kind"] for r in report["rows"]] == ["member", "member", "ensemble", "cascade"]
    assert all(was_measured(r) for r in report["rows"])
    assert report["measurement"]["later_stages"] == later_stages


def test_a_batch_of_images_of_different_sizes_runs_in_parts_and_loses_none(world, mixed_sizes, tmp_path):
    """At --batch-size 4 over images of three sizes every image is evaluated (in parts of one size)
    and timed, with the figures of a run at batch size 1."""
    root, sizes = mixed_sizes
    reports = {batch: run_eval(world, "--ensemble", f"{A},{B}", "--cascade", f"{A},{B}", "--thresholds", "0.5",
                               "--batch-size", str(batch), "--cache-dir", str(tmp_path / f"cache{batch}"),
                               "--measure-samples", "6", "--measure-rounds", "1", root=root,
                               json_name=f"parts-{batch}.json") for batch in (1, 4)}
    for report in reports.values():
        assert report["samples"] == len(sizes) and not report["skipped"]
        assert all(was_measured(r) for r in report["rows"])
    assert ([(r["name"], r["metric"], r["macs_mean"]) for r in reports[4]["rows"]]
            == [(r["name"], r["metric"], r["macs_mean"]) for r in reports[1]["rows"]])


def test_a_loaded_card_predicts_images_of_different_sizes(world, mixed_sizes):
    """`predict_samples` on decoded images of three sizes gives each image's own map, in the given
    order, equal to running the images of its size together; a stream of single images gives
    each image's output alone."""
    from committee_tasks.committees.cards import CommitteeCard
    from committee_tasks.committees.scoring import Cascade
    from committee_tasks.engine.runnable import load_committee

    root, sizes = mixed_sizes
    task = task_with_zoo(world)
    dataset = load_segmentation_dataset("cityscapes", root)
    members = {m: task.build_member(m, world["weights"]) for m in (A, B)}
    raw = [dataset[i].data for i in range(len(dataset))]
    with torch.no_grad():
        first = [members[A].module(torch.as_tensor(item)[None]).numpy() for item in raw]
    threshold = float(np.median(np.concatenate([Cascade([A, B], 0.0).confidence_fn(p) for p in first])))
    card = CommitteeCard.from_committee(Cascade([A, B], threshold), "segmentation", members)
    module = load_committee(card, task=task, members=members, device="cpu")
    together = module.predict_samples(raw)
    assert [tuple(p.shape) for p in together.probs] == [(C, h, w) for w, h in sizes]
    for group in ([0, 1, 4], [2, 3], [5]):  # the images of each size, as they ran
        same_size = module.predict_samples([raw[i] for i in group])
        for row, i in enumerate(group):
            torch.testing.assert_close(together.probs[i], same_size.probs[row], rtol=0, atol=0)
            assert together.exit_stage[i] == same_size.exit_stage[row] and together.macs[i] == same_size.macs[row]
    assert 0 < int((together.exit_stage == 0).sum()) < len(sizes)
    streamed = list(module.predict_stream(torch.as_tensor(item)[None] for item in raw))
    for one, item in zip(streamed, raw):  # a stream of single images: as each image alone
        alone = module.predict_samples([item])
        torch.testing.assert_close(one.probs, alone.probs, rtol=0, atol=0)
        assert one.exit_stage == alone.exit_stage and one.macs == alone.macs


def test_a_confidence_not_cached_by_default_is_computed_when_asked_for(world, full_maps):
    """--confidence frac_above_0.8 was refused after the evaluation pass (the task caches only
    frac_above_0.9 of the levels); it is computed too, and its exits are the maps' own."""
    report = run_eval(world, "--cascade", f"{A},{B}", "--thresholds", "0.5", "--confidence", "frac_above_0.8",
                      json_name="frac08.json")
    row = next(r for r in report["rows"] if r["kind"] == "cascade")
    ids, probs, _ = full_maps
    confident = np.array([(p.max(0) >= 0.8).mean() >= 0.5 for p in probs[A]])
    assert row["exit_fractions"][0] == pytest.approx(confident.mean())
