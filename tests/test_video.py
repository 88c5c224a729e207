"""The video task end to end on real (tiny) mp4 files and tiny X3D members loaded through the
zoo path, checked against a plain numpy reference computed from the same per-view outputs."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("pytorchvideo", reason="the video extra is not installed (pip install '.[video]')")
from committee_tasks.core.compat import import_decord  # noqa: E402  (cv2 before decord: see its docstring)

try:
    import_decord()
except Exception:  # noqa: BLE001
    pytest.skip("the video extra is not installed (pip install '.[video]')", allow_module_level=True)
pytest.importorskip("av", reason="the video extra is not installed (pip install '.[video]')")

from committee_tasks.cli.eval import main as eval_main  # noqa: E402
from committee_tasks.core.errors import CommitteeError  # noqa: E402
from committee_tasks.core.macs import count_macs  # noqa: E402
from committee_tasks_builtin.video import VideoTask  # noqa: E402
from committee_tasks_builtin.video.datasets import load_kinetics  # noqa: E402
from committee_tasks_builtin.video.decoding import VideoFile, decode_views  # noqa: E402
from committee_tasks_builtin.video.recipes import SamplingRecipe, view_order  # noqa: E402
from tests.conftest import was_measured  # noqa: E402
from tests.video_fixtures import CLASSES, TINY_MEMBERS, build_tiny, make_dataset, make_zoo, write_video  # noqa: E402

A, B = "tiny_x3d_a", "tiny_x3d_b"


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    folder = tmp_path_factory.mktemp("video")
    root = make_dataset(folder / "data", per_class=3)
    zoo, weights = make_zoo(folder)
    return {"folder": folder, "root": root, "zoo": zoo, "weights": weights}


def run_eval(world, *args, json_name="out.json", root=None, extra=()):
    out = world["folder"] / json_name
    argv = ["--task", "video", "--dataset", "kinetics", "--data-root", str(root or world["root"]),
            "--zoo", str(world["zoo"]), "--weights-dir", str(world["weights"]),
            "--cache-dir", str(world["folder"] / "cache"), "--workers", "0", "--no-progress",
            "--measure-samples", "0", "--output-dtype", "float32", "--json", str(out), *args, *extra]
    assert eval_main(argv) == 0
    return json.loads(out.read_text())


def reference_view_probs(world, name: str) -> dict[str, np.ndarray]:
    """Per-view probabilities of a bare pytorchvideo model on each video's views (numpy)."""
    recipe = SamplingRecipe(**TINY_MEMBERS[name]["recipe"])
    model = build_tiny(name)
    dataset = load_kinetics(world["root"])
    mean = torch.tensor(recipe.mean).view(1, 3, 1, 1, 1)
    std = torch.tensor(recipe.std).view(1, 3, 1, 1, 1)
    from committee_tasks_builtin.video.decoding import VideoViews

    out = {}
    for i, sid in enumerate(dataset.ids):
        views = decode_views(dataset[i].data, {"v": VideoViews(recipe)})[0]["v"]
        with torch.no_grad():
            out[sid] = model((views.float() / 255 - mean) / std).numpy()  # X3D heads end in softmax
    return out


def midpoint(confidence: np.ndarray) -> float:
    """A threshold halfway between the two middle confidences: no sample sits on it, so float
    rounding differences between the reference and the toolkit cannot flip an exit."""
    values = np.sort(np.unique(confidence))
    middle = len(values) // 2
    return float((values[middle - 1] + values[middle]) / 2)


def per_view_macs(name: str) -> int:
    recipe = SamplingRecipe(**TINY_MEMBERS[name]["recipe"])
    clip = torch.zeros(1, 3, recipe.frames, recipe.crop_size, recipe.crop_size)
    return count_macs(build_tiny(name), clip)


def assert_top1(metric: float, probs: np.ndarray, targets: np.ndarray, tie: float = 1e-5) -> None:
    """``metric`` is the top-1 of ``probs``, where a sample whose two largest probabilities lie
    within ``tie`` may count either way: these random members' outputs are near uniform (each
    world's x264 encoding differs a little, and some give a top-2 margin of 4e-7), and the
    toolkit's channels-last convolutions round otherwise than the reference's contiguous ones."""
    top2 = np.sort(probs, axis=1)[:, -2:]
    close = top2[:, 1] - top2[:, 0] < tie
    correct = probs.argmax(1) == targets
    low, high = 100 * np.mean(correct & ~close), 100 * np.mean(correct | close)
    assert low - 1e-9 <= metric <= high + 1e-9, (metric, low, high)
    if not close.any():
        assert metric == pytest.approx(100 * np.mean(correct))


def test_ensemble_and_cascade_match_numpy_reference(world):
    probs = {m: reference_view_probs(world, m) for m in (A, B)}
    ids = sorted(probs[A])
    targets = np.array([CLASSES.index(Path(sid).parent.name) for sid in ids])
    video = {m: np.stack([probs[m][sid].mean(axis=0) for sid in ids]) for m in (A, B)}  # mean over views
    threshold = midpoint(video[A].max(axis=1))
    report = run_eval(world, "--ensemble", f"{A},{B}", "--cascade", f"{A},{B}", "--thresholds", f"{threshold}",
                      "--reference", B)
    rows = {r["name"]: r for r in report["rows"]}
    macs = {m: len(next(iter(probs[m].values()))) * per_view_macs(m) for m in (A, B)}
    assert macs[A] == 9 * per_view_macs(A) and macs[B] == 6 * per_view_macs(B)  # views x per-view MACs

    for m in (A, B):
        assert_top1(rows[m]["metric"], video[m], targets)
        assert rows[m]["macs_mean"] == macs[m]
    ensemble = (video[A] + video[B]) / 2
    assert_top1(rows[f"ensemble({A}+{B})"]["metric"], ensemble, targets)
    exits = video[A].max(axis=1) >= threshold
    cascade = np.where(exits[:, None], video[A], ensemble)
    row = rows[f"cascade({A}>{B})@{threshold:g}"] if f"cascade({A}>{B})@{threshold:g}" in rows else \
        next(r for r in report["rows"] if r["kind"] == "cascade")
    assert 0 < exits.sum() < len(ids)  # both stages are used
    assert_top1(row["metric"], cascade, targets)
    assert row["macs_mean"] == pytest.approx(macs[A] + (~exits).mean() * macs[B])
    assert row["macs_worst"] == macs[A] + macs[B]
    assert report["cost_notes"][A].startswith("9 views x")


def test_view_level_early_exit_matches_sequential_reference(world):
    probs = reference_view_probs(world, A)
    ids = sorted(probs)
    first = np.array([probs[sid][0].max() for sid in ids])
    threshold = float(np.round(midpoint(first), 6))
    name = f"{A}+exit{threshold}"
    report = run_eval(world, "--models", name, json_name="exit.json")
    row = report["rows"][0]
    per_view = per_view_macs(A)
    used, correct = [], []
    for sid in ids:  # plain sequential rule: add views in order until the running mean is confident
        total = np.zeros(len(CLASSES))
        for k, p in enumerate(probs[sid], 1):
            total += p
            if (total / k).max() >= threshold:
                break
        used.append(k)
        correct.append((total / k).argmax() == CLASSES.index(Path(sid).parent.name))
    assert len(set(used)) > 1  # the cost varies per video
    assert row["macs_mean"] == pytest.approx(np.mean(used) * per_view)
    assert row["macs_worst"] == max(used) * per_view
    assert row["metric"] == pytest.approx(100 * np.mean(correct))


def test_views_spelled_in_the_name(world):
    report = run_eval(world, "--models", f"{A}@2x1", json_name="views.json")
    assert report["rows"][0]["macs_mean"] == 2 * per_view_macs(A)
    assert report["rows"][0]["published"]["views"] == "2x1"
    with pytest.raises(CommitteeError, match="spatial crops must be 1"):
        VideoTask_with_zoo(world).parse_name(f"{A}@2x2")


def VideoTask_with_zoo(world) -> VideoTask:
    task = VideoTask()
    task.add_zoo_file(world["zoo"])
    return task


def test_bad_videos_are_skipped_or_noted_and_counted(world, tmp_path, caplog):
    root = tmp_path / "data"
    shutil.copytree(world["root"], root)
    good = root / "val" / "archery" / "archery_0.mp4"
    (root / "val" / "archery" / "corrupt.mp4").write_bytes(np.random.default_rng(0).bytes(5000))
    data = good.read_bytes()
    (root / "val" / "bowling" / "truncated.mp4").write_bytes(data[: len(data) // 3])
    write_video(root / "val" / "juggling balls" / "short.mp4", frames=2, seed=99, tint=2)
    rows = [f"{p.relative_to(root / 'val')} {CLASSES.index(p.parent.name)}"
            for p in sorted((root / "val").rglob("*.mp4"))]
    rows += ["archery/missing.mp4 0", "bowling/bowling_1.mp4 tennis"]
    (root / "val.csv").write_text("\n".join(rows) + "\n")
    (root / "val" / "bowling" / "bowling_1.mp4").unlink()  # only its unknown-label row remains
    rows = [r for r in rows if not r.startswith("bowling/bowling_1.mp4 1")]
    (root / "val.csv").write_text("\n".join(rows) + "\n")

    report = run_eval(world, "--cascade", f"{A},{B}", "--thresholds", "0.5", root=root, json_name="bad.json")
    skipped = report["skipped"]
    assert "archery/corrupt.mp4" in skipped and "archery/missing.mp4" in skipped
    assert "no such file" in skipped["archery/missing.mp4"]
    assert "not a class" in skipped["bowling/bowling_1.mp4"]
    assert "bowling/truncated.mp4" in skipped  # no index (moov) at its end: cannot open
    assert "frames repeated" in report["notes"]["juggling balls/short.mp4"]
    good_videos = len(rows) - len(skipped)
    assert report["samples"] == good_videos

    # from the cache, building no member: the skipped videos are decoded again (still corrupt), as the
    # loop would, not just listed (which a corrupt video passes)
    with caplog.at_level("INFO", logger="committee_tasks.engine.loop"):
        again = run_eval(world, "--cascade", f"{A},{B}", "--thresholds", "0.5", root=root, json_name="bad2.json")
    assert "building" not in caplog.text and "trying again" not in caplog.text
    assert again["rows"] == report["rows"] and again["notes"] == report["notes"]
    assert again["skipped"] == report["skipped"]


def test_frames_decoded_once_for_all_members(world, monkeypatch):
    from committee_tasks_builtin.video import decoding

    calls = []
    original = decoding.OpenVideo.frames
    monkeypatch.setattr(decoding.OpenVideo, "frames", lambda self, idx: calls.append(len(idx)) or original(self, idx))
    task = VideoTask_with_zoo(world)
    members = [task.build_member(m, world["weights"]) for m in (A, B)]
    dataset = load_kinetics(world["root"])
    inputs, notes = task.member_inputs(dataset[0].data, {m.transform_key: m.transform for m in members})
    assert len(calls) == 1 and not notes
    assert inputs[members[0].transform_key].shape == (9, 3, 4, 32, 32)
    assert inputs[members[1].transform_key].shape == (6, 3, 6, 48, 48)
    assert inputs[members[0].transform_key].dtype == torch.uint8


def test_wrong_input_size_is_refused(world):
    task = VideoTask_with_zoo(world)
    member = task.build_member(A, world["weights"])
    with pytest.raises(ValueError, match=r"takes clips of shape \(3, 4, 32, 32\)"):
        member.module(torch.zeros(1, 3, 4, 40, 40, dtype=torch.uint8))


def test_checkpoint_must_fit_architecture(world, tmp_path):
    weights = tmp_path / "w"
    weights.mkdir()
    shutil.copy(world["weights"] / f"{B}.pyth", weights / f"{A}.pyth")
    with pytest.raises(CommitteeError, match="does not fit"):
        VideoTask_with_zoo(world).build_member(A, weights)


def test_hub_weights_offline_error_names_file_and_folder(monkeypatch):
    def offline(*args, **kwargs):
        raise OSError("network unreachable")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    folder = Path(torch.hub.get_dir()) / "checkpoints"
    with pytest.raises(CommitteeError, match=r"Put the file 'X3D_M\.pyth' in " + str(folder)):
        VideoTask().build_member("x3d_m")


def test_x3d_macs_per_view_match_the_x3d_paper():
    """X3D-S/M/L at the sizes the hub builds them for: 1.96 / 4.73 / 18.37 GMACs (PySlowFast)."""
    task = VideoTask()
    for name, published, size in (("x3d_s", 1.96e9, (13, 160)), ("x3d_m", 4.73e9, (16, 224)),
                                  ("x3d_l", 18.37e9, (16, 312))):
        model = task.model_entry(name).builder().eval()
        macs = count_macs(model, torch.zeros(1, 3, size[0], size[1], size[1]))
        assert abs(macs / published - 1) < 0.01, (name, macs)


def test_hub_recipes_and_views():
    task = VideoTask()
    _, recipe, _ = task.parse_name("x3d_s")
    assert (recipe.frames, recipe.sampling_rate, recipe.crop_size, recipe.views) == (13, 6, 182, 30)
    _, single, _ = task.parse_name("x3d_s@10x1")
    assert single.crop_size == 160 and single.views == 10  # one crop: the size the hub built it for
    _, mvit, _ = task.parse_name("mvit_base_16x4")
    assert (mvit.clips, mvit.crops, mvit.crop_size) == (5, 1, 224)
    _, slowfast, _ = task.parse_name("slowfast_r50")
    assert (slowfast.frames, slowfast.sampling_rate, slowfast.slowfast_alpha) == (32, 2, 4)
    with pytest.raises(CommitteeError, match="x3d_m"):
        task.parse_name("x3d_mm")


def test_temporal_sampling_follows_pytorchvideo():
    recipe = SamplingRecipe(frames=4, sampling_rate=5, short_side=8, crop_size=8, clips=3, crops=1)
    # 300 frames at 30 fps, clip = 20 frames: starts at 0, 140, 280 (ConstantClipsPerVideoSampler)
    idx = recipe.frame_indices(300, 30.0)
    assert idx.tolist() == [[0, 6, 12, 19], [140, 146, 152, 159], [280, 286, 292, 299]]
    # at 15 fps the clip spans half as many source frames
    assert recipe.frame_indices(300, 15.0)[0].tolist() == [0, 3, 6, 9]
    # shorter than a clip: uniform over the whole video, frames repeat, truncated as pytorchvideo's
    # uniform_temporal_subsample truncates (they were rounded: 10 frames gave 0,1,1,2,2,... not 0,0,1,1,2)
    assert recipe.frame_indices(6, 30.0).tolist() == [[0, 1, 3, 5]] * 3
    from committee_tasks.core.compat import import_pytorchvideo

    import_pytorchvideo()  # pytorchvideo 0.1.5 imports a renamed torchvision module: registered first
    from pytorchvideo.transforms.functional import uniform_temporal_subsample

    frames = torch.arange(10).view(10, 1)
    long_clip = SamplingRecipe(frames=16, sampling_rate=5, short_side=8, crop_size=8, clips=1, crops=1)
    expected = uniform_temporal_subsample(frames, 16, temporal_dim=0).view(-1).tolist()
    assert long_clip.frame_indices(10, 30.0)[0].tolist() == expected


def test_spatial_crops_and_view_order():
    recipe = SamplingRecipe(frames=1, sampling_rate=1, short_side=4, crop_size=4, clips=1, crops=3)
    clip = torch.arange(8, dtype=torch.uint8).view(1, 1, 8, 1).expand(1, 4, 8, 3).contiguous()  # H=4, W=8
    left, centre, right = recipe.spatial_views(clip)
    assert left[0, 0, 0].tolist() == [0, 1, 2, 3]
    assert centre[0, 0, 0].tolist() == [2, 3, 4, 5]
    assert right[0, 0, 0].tolist() == [4, 5, 6, 7]
    order = view_order(5, 3)
    assert order[:5] == [(2, 1), (0, 1), (4, 1), (1, 1), (3, 1)]  # centre crops, clips spread out first
    assert sorted(order) == [(c, s) for c in range(5) for s in range(3)]


def test_kinetics_layouts(tmp_path):
    write = lambda p: write_video(p, frames=3)  # noqa: E731
    # official annotation CSV, per-class folders, PySlowFast's quoted JSON class file
    root = tmp_path / "k"
    write(root / "val" / "abseiling" / "abc_000010_000020.mp4")
    write(root / "val" / "air drumming" / "xyz_000001_000011.mp4")
    (root / "val.csv").write_text("label,youtube_id,time_start,time_end,split\n"
                                  "abseiling,abc,10,20,val\nair drumming,xyz,1,11,val\nzumba,qqq,0,10,val\n")
    (root / "kinetics_classnames.json").write_text(json.dumps({'"air drumming"': 1, "abseiling": 0, "zumba": 2}))
    ds = load_kinetics(root)
    assert [r.label for r in ds.rows] == [0, 1, 2]
    assert ds.ids[0] == "abseiling/abc_000010_000020.mp4"
    assert not ds.rows[2].path.exists()  # listed but absent: skipped with "no such file" when read
    # mmaction2 list file with class indices, paths relative to the split folder
    (root / "val.csv").unlink()
    (root / "kinetics400_val_list_videos.txt").write_text("abseiling/abc_000010_000020.mp4 0\n"
                                                          "air drumming/xyz_000001_000011.mp4 1\n")
    ds = load_kinetics(root)
    assert [r.label for r in ds.rows] == [0, 1] and all(r.path.is_file() for r in ds.rows)
    # class names with spaces (Kinetics' own), after a space or a comma: the path ends at its suffix
    (root / "kinetics400_val_list_videos.txt").write_text("abseiling/abc_000010_000020.mp4 abseiling\n"
                                                          "air drumming/xyz_000001_000011.mp4,air drumming\n")
    ds = load_kinetics(root)
    assert [r.label for r in ds.rows] == [0, 1] and all(r.path.is_file() for r in ds.rows)
    # folders only, no class file: sorted folder names
    (root / "kinetics400_val_list_videos.txt").unlink()
    (root / "kinetics_classnames.json").unlink()
    ds = load_kinetics(root)
    assert ds.classes == ["abseiling", "air drumming"] and [r.label for r in ds.rows] == [0, 1]
    # folders for only some of a 400-class model's classes: refused, not relabelled 0, 1 (which
    # scored a correct model 0); with the full class list each folder keeps its class's index
    with pytest.raises(CommitteeError, match=r"has 2 classes but the members predict 400.*class_list=FILE"):
        ds.check_classes(400)
    (root / "classes.txt").write_text("\n".join(["zumba", "air drumming", "yoga", "abseiling"]) + "\n")
    ds = load_kinetics(root, class_list=root / "classes.txt")
    assert [r.label for r in ds.rows] == [3, 1]
    ds.check_classes(4)
    with pytest.raises(CommitteeError, match="not a folder"):
        load_kinetics(tmp_path / "nowhere")


def test_search_and_cross_task_report_work_for_video(world, digits_members, tmp_path):
    """tools/search.py and tools/report.py take video pools as they are (no video code in the core);
    a pool may mix protocols of one model (A@3x1 is a cheaper member than A's 3x3)."""
    from committee_tasks.cli.report import main as report_main
    from committee_tasks.cli.search import main as search_main

    common = ["--zoo", str(world["zoo"]), "--weights-dir", str(world["weights"]), "--workers", "0",
              "--no-progress", "--cache-dir", str(world["folder"] / "cache")]
    video_json, digits_json = tmp_path / "video.json", tmp_path / "digits.json"
    assert search_main(["--task", "video", "--dataset", "kinetics", "--data-root", str(world["root"]),
                        "--pool", f"{A}@3x1,{A},{B}", "--calibration-fraction", "0.5", *common,
                        "--json", str(video_json)]) == 0
    report = json.loads(video_json.read_text())
    assert report["task"] == "video" and [m["name"] for m in report["members"]] == [f"{A}@3x1", A, B]
    assert sum(p["kind"] == "ensemble" for p in report["points"]) == 4  # every subset of 2 or 3
    assert report["configurations"] > 3 and len(report["references"]) == 3
    assert search_main(["--dataset", "digits", "--pool", "digits_cnn_s,digits_cnn_l", "--workers", "0",
                        "--no-progress", "--json", str(digits_json)]) == 0
    out = tmp_path / "report"
    assert report_main([str(digits_json), str(video_json), "--out", str(out)]) == 0
    table = next(out.glob("*.md")).read_text()
    assert "video" in table and "classification" in table and B in table
    assert any(p.suffix == ".png" and p.stat().st_size > 0 for p in out.iterdir())


def test_tools_eval_script_runs_video(world, tmp_path):
    import subprocess
    import sys

    from tests.conftest import REPO

    out = tmp_path / "script.json"
    result = subprocess.run(
        [sys.executable, str(REPO / "tools" / "eval.py"), "--task", "video", "--dataset", "kinetics",
         "--data-root", str(world["root"]), "--zoo", str(world["zoo"]), "--weights-dir", str(world["weights"]),
         "--cascade", f"{A}@3x1,{B}", "--thresholds", "0.4", "--cache-dir", str(tmp_path / "cache"),
         "--workers", "1", "--no-progress", "--json", str(out)],
        capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(out.read_text())
    assert report["rows"][-1]["kind"] == "cascade" and was_measured(report["rows"][-1])
    assert f"{A}@3x1: 3 views x" in result.stdout


def test_decord_does_not_break_opencv_png_decoding(tmp_path):
    """decord bundles a zlib that, loaded before OpenCV's, breaks cv2.imread on PNGs; the toolkit
    imports cv2 first (a fresh interpreter, so the import order is the toolkit's)."""
    import subprocess
    import sys

    from PIL import Image

    pytest.importorskip("cv2")
    png = tmp_path / "x.png"
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(png)
    code = ("from committee_tasks.core.compat import import_decord; import_decord(); import cv2; "
            f"assert cv2.imread({str(png)!r}) is not None")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-1000:]


def test_cost_notes_are_kept_when_everything_is_cached(world):
    """A run that reads every output from the cache builds no member: the notes on how each
    member's cost is made up came from built members only, so they vanished."""
    first = run_eval(world, "--models", f"{A},{B}", json_name="notes1.json")
    again = run_eval(world, "--models", f"{A},{B}", json_name="notes2.json")
    assert first["cost_notes"] and again["cost_notes"] == first["cost_notes"]


def test_a_video_decord_cannot_decode_is_decoded_with_pyav(tmp_path):
    """decord 0.6.0 fails on some frame sizes (a 72x128 portrait H.264 clip) that FFmpeg reads:
    such a video was skipped; PyAV decodes it, the same frames decord gives where both can."""
    from committee_tasks_builtin.video.decoding import OpenVideo, VideoDecodeError

    write_video(tmp_path / "portrait.mp4", frames=12, height=128, width=72)
    portrait = OpenVideo(tmp_path / "portrait.mp4")
    assert tuple(portrait.frames(np.array([0, 5, 11])).shape) == (3, 128, 72, 3)
    assert portrait.note.startswith("decoded with PyAV (decord cannot decode frames")
    write_video(tmp_path / "landscape.mp4", frames=12)
    by_decord, by_pyav = OpenVideo(tmp_path / "landscape.mp4"), OpenVideo(tmp_path / "landscape.mp4")
    by_pyav._with_pyav("(forced)")
    indices = np.arange(12)
    assert torch.equal(by_decord.frames(indices), by_pyav.frames(indices))
    assert (by_decord.num_frames, by_decord.fps) == (by_pyav.num_frames, by_pyav.fps)
    (tmp_path / "garbage.mp4").write_bytes(np.random.default_rng(0).bytes(4000))
    with pytest.raises(VideoDecodeError, match="decord cannot open .*; PyAV: "):
        OpenVideo(tmp_path / "garbage.mp4")
