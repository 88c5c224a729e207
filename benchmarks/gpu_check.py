#!/usr/bin/env python3
"""The CUDA paths checked on one GPU, in one short run, by whoever has one (`benchmarks/gpu_check.sh`).

1. A classification, a video and a segmentation member at real input sizes with random weights
   (torchvision's resnet50 at 224x224, r2plus1d_18 at 16x112x112 and deeplabv3_resnet50 at
   512x1024): each runs as the toolkit runs it on the device (autocast float16, channels-last /
   channels-last-3d, non-blocking copies from pinned memory, outputs rounded to the cache's
   float16) and on the CPU in float32; printed: the largest difference of probabilities, the
   agreement of argmax, and device throughput.
2. The evaluation loop (pinned memory, CUDA-event timing, cache writes) on two members against
   bare forward passes of the same members on the same preprocessed inputs: once on float32
   inputs in memory, once on uint8 pixels (224x224x3, as decoded images are) that the members'
   preprocessing converts and normalises on the device (`core/device_preprocessing.py`).
3. A cascade resnet18 -> resnet152 (random weights), threshold set for an 80% first-stage exit,
   at batch 256: realized speedup against resnet152 alone vs the MACs-predicted one.

After 2 and 3, `gpu_breakdown.py` takes the loop's data loading and the cascade apart per batch,
so that one run says where the time goes.

With ``--device cpu`` every step runs on the CPU (smaller sizes with ``--small``): the test suite
runs it that way. Prints one summary table; exits 1 when a check fails.

    python benchmarks/gpu_check.py [--device cuda] [--samples 512] [--batch-size 256] [--small]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # runnable from a checkout without installing

import committee_tasks  # noqa: E402,F401  (first: the thread policy is set before torch loads)
import numpy as np  # noqa: E402
import torch  # noqa: E402
import torchvision  # noqa: E402

from committee_tasks import (ArrayDataset, Cascade, CommitteeExecutor, LoopOptions, Member,  # noqa: E402
                             PredictionCache, Single, evaluate_pool, get_task)
from committee_tasks.core.devices import cudnn_autotuner, resolve_device  # noqa: E402
from committee_tasks.engine.executor import MemberRunner  # noqa: E402
from committee_tasks.engine.inputs import make_loader, pinned, preprocessed_batches  # noqa: E402
from committee_tasks.core.image_preprocessing import ImagePreprocessing  # noqa: E402
from committee_tasks.core.device_preprocessing import device_splits  # noqa: E402
from committee_tasks.engine.loop import LoopPhases  # noqa: E402
from committee_tasks.engine.timing import measure_interleaved  # noqa: E402

import gpu_breakdown  # noqa: E402  (beside this file)

TOLERANCE = {"max_abs_diff": 0.02, "argmax_agreement": 0.95}  # float16 autocast vs float32


class SegmentationLogits(torch.nn.Module):
    """torchvision's segmentation models return {"out": logits}; members return logits."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x):
        return self.model(x)["out"]


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda")
    p.add_argument("--samples", type=int, default=512, help="samples per throughput figure")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--small", action="store_true", help="small inputs and models (a CPU smoke run)")
    p.add_argument("--workers", default="0",
                   help="the loop's DataLoader workers (0: what the toolkit uses for arrays in memory, as here); "
                        "a comma-separated list runs the loop once per count")
    p.add_argument("--parts", default="members,loop,cascade", help="which of the three checks to run")
    p.add_argument("--cascade-autotune", choices=("both", "on", "off"), default="both",
                   help="the cascade with cuDNN's autotuner on (the executor's default), off, or both (off first: "
                        "a tuned run's cached kernel plans would serve the untuned one)")
    return p.parse_args(argv)


def members_at_real_size(small: bool) -> list[tuple[str, Member, tuple[int, ...], int]]:
    """(task, member, input shape, batch size for the comparison) with random weights."""
    torch.manual_seed(0)
    models = torchvision.models
    if small:
        return [("classification", models.resnet18(num_classes=10), (3, 32, 32), 8),
                ("video", models.video.r3d_18(num_classes=5), (3, 4, 32, 32), 4),
                ("segmentation", SegmentationLogits(models.segmentation.fcn_resnet50(
                    weights=None, weights_backbone=None, num_classes=4)), (3, 64, 96), 2)]
    return [("classification", models.resnet50(zero_init_residual=True), (3, 224, 224), 64),
            ("video", models.video.r2plus1d_18(), (3, 16, 112, 112), 16),
            ("segmentation", SegmentationLogits(models.segmentation.deeplabv3_resnet50(
                weights=None, weights_backbone=None, num_classes=19)), (3, 512, 1024), 4)]


def compare_paths(task_name, module, shape, batch, device, rounds) -> dict:
    """The member on the device (the toolkit's path) vs on the CPU in float32."""
    member = Member.from_module(module.eval(), name=f"{task_name}_random", task=task_name)
    x = torch.randn((batch, *shape)).pin_memory() if device.type == "cuda" else torch.randn((batch, *shape))
    on_cpu = MemberRunner("cpu", amp=False, output_dtype="float32")
    cpu_probs, _ = on_cpu(member, x)
    runner = MemberRunner(str(device))
    runner.place([member])
    with torch.no_grad():
        runner(member, x)  # warm-up: cuDNN's algorithm choice, the allocator
        start = time.perf_counter()
        for _ in range(rounds):
            probs, _ = runner(member, x)  # copied back to the host: the time includes the sync
        seconds = time.perf_counter() - start
    probs = probs.astype(np.float32)
    return {"row": f"{task_name}: {type(module.model if hasattr(module, 'model') else module).__name__} "
                   f"{'x'.join(map(str, shape))}",
            "max_abs_diff": float(np.abs(probs - cpu_probs).max()),
            "argmax_agreement": float((probs.argmax(1) == cpu_probs.argmax(1)).mean()),
            "samples_per_s": batch * rounds / seconds}


def loop_vs_bare(task, members, dataset, device, batch_size, samples, workers) -> dict:
    """The loop (decode once, preprocess, every member, cache writes; pinned memory and CUDA-event
    timing on the GPU) against the sum of bare forward passes on the same preprocessed batches."""
    with tempfile.TemporaryDirectory() as cache:
        options = LoopOptions(batch_size=batch_size, device=str(device), progress=False, num_workers=workers)
        # warm-up: kernels, and enough batches that the pinned-memory pool has grown to what the
        # pass keeps alive (each new 154 MB pinned block is pinned page by page, once per process)
        evaluate_pool(task, members, dataset, PredictionCache(cache), limit=min(samples, 8 * batch_size),
                      options=options)
        start = time.perf_counter()
        _, throughput = evaluate_pool(task, members, dataset, PredictionCache(Path(cache) / "timed"), limit=samples,
                                      options=options)
        loop_seconds = time.perf_counter() - start
    batches = pinned(preprocessed_batches(dataset, members, dataset.ids, samples, batch_size), device)
    runner = MemberRunner(str(device))
    runner.place(members)
    bare = 0.0
    with torch.no_grad():
        for m in members:
            runner(m, batches[0][m.transform_key])
            start = time.perf_counter()
            for inputs in batches:
                runner(m, inputs[m.transform_key])
            bare += time.perf_counter() - start
    phases = throughput.phases  # where the loop's wall time went; "setup" hashes the whole array (fingerprint)
    passed = loop_seconds - phases["setup"]
    return {"inputs": inputs_of(dataset, members, device), "workers": workers, "loop": samples / loop_seconds,
            "bare": samples / bare, "ratio": bare / loop_seconds,
            "pass": samples / passed, "pass_ratio": bare / passed, "phases": phases,
            "data_alone": data_alone(task, members, dataset, device, batch_size, samples, workers)}


def data_alone(task, members, dataset, device, batch_size, samples, workers) -> float:
    """Samples per second the loop's DataLoader delivers (pinned on CUDA) with no member running:
    the most the loop can reach on these inputs."""
    split = device_splits(members, device, "auto")  # as the loop loads them: pixels where it normalises on the device
    host = {m.transform_key: split[m.transform_key].host if m.transform_key in split else m.transform for m in members}
    loader = make_loader(dataset, host, list(range(samples)), batch_size,
                         workers, pin_memory=device.type == "cuda", member_inputs=task.member_inputs)
    start = time.perf_counter()
    for _ in loader:
        pass
    return samples / (time.perf_counter() - start)


def split_inputs_diff(transform, dataset, device, count: int = 64) -> float:
    """The largest difference between a batch preprocessed whole on the host and split (pixels on
    the host, float and normalise on the device): 0 on the CPU, about 1 ulp on CUDA."""
    from committee_tasks.core.device_preprocessing import split_for_device

    split = split_for_device(transform)
    raw = [dataset[i].data for i in range(min(count, len(dataset)))]
    whole = torch.stack([transform(x) for x in raw]).to(device)
    finished = split.device(torch.stack([split.host(x) for x in raw]).to(device))
    return float((whole - finished).abs().max())


def inputs_of(dataset, members, device) -> str:
    if dataset.inputs.dtype != np.uint8:
        return "float32 inputs"
    # as the loop decides (--device-preprocessing auto): the CPU preprocesses each sample whole
    return "uint8 pixels normalised on the device" if device_splits(members, device, "auto") else "uint8 pixels"


def cascade_speedup(task, device, batch_size, samples, rounds, small, autotune="both") -> dict:
    torch.manual_seed(1)
    models = torchvision.models
    # zero-initialised residual branches keep random deep ResNets' activations in float16's range
    # (152 layers of default-initialised blocks overflow it, as no trained network does)
    small_net, large_net = ((models.resnet18(num_classes=10), models.resnet50(num_classes=10)) if small
                            else (models.resnet18(zero_init_residual=True), models.resnet152(zero_init_residual=True)))
    shape = (3, 32, 32) if small else (3, 224, 224)
    names = ("resnet18", "resnet50") if small else ("resnet18", "resnet152")
    members = {n: Member.from_module(net.eval(), name=n) for n, net in zip(names, (small_net, large_net))}
    dataset = ArrayDataset(torch.randn((samples, *shape)), torch.zeros(samples, dtype=torch.long), name="random")
    with tempfile.TemporaryDirectory() as cache:
        preds, _ = evaluate_pool(task, list(members.values()), dataset, PredictionCache(cache),
                                 options=LoopOptions(batch_size=batch_size, device=str(device), progress=False,
                                                     num_workers=2))
    confidence = preds.stage_confidence([names[0]], "max_prob", task)
    threshold = float(np.quantile(confidence, 0.2))  # 80% of samples at or above: exit at stage 1
    cascade, reference = Cascade(list(names), threshold), Single(names[1])
    predicted = reference.evaluate(preds, task).macs_mean / cascade.evaluate(preds, task).macs_mean
    exits = cascade.evaluate(preds, task).exit_fractions
    batches = pinned(preprocessed_batches(dataset, list(members.values()), preds.ids, samples, batch_size), device)
    realized = {}
    settings = {"both": (False, True), "on": (True,), "off": (False,)}[autotune] if device.type == "cuda" else (None,)
    for tuned in settings:  # core/devices.py: cudnn_autotuner; None: the CPU, which has no cuDNN
        executors = {c.name: CommitteeExecutor(c, members, task, device=str(device), autotune=bool(tuned))
                     for c in (reference, cascade)}
        executors["per-batch"] = CommitteeExecutor(cascade, members, task, device=str(device), autotune=bool(tuned),
                                                   later_stages="per-batch")
        for ex in executors.values():
            ex.warm_up(batches)  # as api/measuring.py warms up: on CUDA every stage's row count meets the autotuner
        measured = measure_interleaved({name: (lambda ex=ex: _run(ex, batches)) for name, ex in executors.items()},
                                       reference.name, rounds)
        realized[tuned] = (measured[cascade.name].speedup["median"], measured["per-batch"].speedup["median"],
                           measured[reference.name].throughput["median"])
    with cudnn_autotuner(device):
        stages, going_on = gpu_breakdown.cascade_stages(members[names[0]], members[names[1]], cascade, task, batches,
                                                       device)
    return {"name": cascade.name.split("@")[0], "threshold": threshold, "exits": exits, "predicted": predicted,
            "realized": realized, "stages": stages, "going_on": going_on}


def _run(executor, batches) -> tuple[int, float]:
    result = executor.run(batches, warmup=0, keep_outputs=False)
    return len(result.exit_stage), result.seconds


def main(argv=None) -> int:
    args = parse_args(argv)
    device = resolve_device(args.device)
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
    else:
        name = "CPU"
    print(f"GPU check on {name} ({device}); torch {torch.__version__}, torchvision {torchvision.__version__}; "
          f"{torch.cuda.device_count()} CUDA devices")
    parts = set(args.parts.split(","))
    rows = [compare_paths(t, m, shape, batch, device, args.rounds) for t, m, shape, batch in
            members_at_real_size(args.small)] if "members" in parts else []
    task = get_task("classification")
    shape = (3, 32, 32) if args.small else (3, 224, 224)
    torch.manual_seed(2)
    pair = [Member.from_module(torchvision.models.resnet18(num_classes=10).eval(), name="loop_a"),
            Member.from_module(torchvision.models.resnet34(num_classes=10).eval(), name="loop_b")]
    data = ArrayDataset(torch.randn((args.samples, *shape)), torch.zeros(args.samples, dtype=torch.long), name="rand")
    # the same nets on decoded images' pixels, (H, W, C) uint8, with ImageNet's normalisation
    pixels = ArrayDataset(torch.randint(0, 256, (args.samples, *shape[1:], shape[0]), dtype=torch.uint8),
                          torch.zeros(args.samples, dtype=torch.long), name="pixels")
    normalise = ImagePreprocessing(mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))
    on_pixels = [Member.from_module(m.module, transform=normalise, name=m.name, num_classes=10) for m in pair]
    with cudnn_autotuner(device):  # the loop's batches have one shape
        loops = [loop_vs_bare(task, pair, data, device, args.batch_size, args.samples, int(w))
                 for w in args.workers.split(",")] if "loop" in parts else []
        loops += [loop_vs_bare(task, on_pixels, pixels, device, args.batch_size, args.samples, 0)] \
            if "loop" in parts else []
    split_diff = split_inputs_diff(normalise, pixels, device) if "loop" in parts else None
    data_path = gpu_breakdown.data_path(data, pair, range(min(args.samples, 16 * args.batch_size)), args.batch_size,
                                        device) if "loop" in parts else None
    cascade = cascade_speedup(task, device, args.batch_size, args.samples, args.rounds, args.small, args.cascade_autotune) \
        if "cascade" in parts else None

    ok = True
    print(f"\n{'member (random weights)':52s} {'max |Δp| vs CPU':>15s} {'argmax agree':>12s} {'samples/s':>10s}")
    for r in rows:
        good = r["max_abs_diff"] <= TOLERANCE["max_abs_diff"] and r["argmax_agreement"] >= TOLERANCE["argmax_agreement"]
        ok &= good
        print(f"{r['row']:52s} {r['max_abs_diff']:15.5f} {100 * r['argmax_agreement']:11.1f}% "
              f"{r['samples_per_s']:10.1f}{'' if good else '  FAILED'}")
    for loop in loops:
        print(f"evaluation loop, resnet18 + resnet34, {loop['inputs']}, {args.samples} samples, "
              f"{loop['workers']} workers: "
              f"{loop['loop']:.0f} samples/s with set-up, {loop['pass']:.0f} samples/s in its pass over the data; "
              f"bare forward passes of both on the same preprocessed inputs {loop['bare']:.0f} samples/s; pass / bare "
              f"{loop['pass_ratio']:.2f} (goal >= 0.95: {'met' if loop['pass_ratio'] >= 0.95 else 'MISSED'}), "
              f"with set-up {loop['ratio']:.2f}")
        print("  loop wall time by phase: " + ", ".join(f"{name.replace('_', ' ')} {loop['phases'][name]:.2f} s"
                                                       for name in LoopPhases.NAMES)
              + f"; its data loading alone delivers {loop['data_alone']:.0f} samples/s")
    if split_diff is not None:
        print(f"  uint8 pixels normalised on the device vs on the host: inputs differ by at most {split_diff:.3g} "
              f"({'bit for bit' if split_diff == 0 else 'CUDA divides by a scalar through its reciprocal'})")
    if data_path:
        print(f"  data loading per batch of {args.batch_size}, step by step: "
              + ", ".join(f"{name} {ms:.1f} ms" for name, ms in data_path.items()))
    if cascade:
        print(f"{cascade['name']} @ {cascade['threshold']:.4f} (exits "
              f"{' / '.join(f'{100 * f:.0f}%' for f in cascade['exits'])}), batch {args.batch_size}: "
              f"MACs-predicted speedup {cascade['predicted']:.2f}x")
        for tuned, (speedup, split, alone) in cascade["realized"].items():
            setting = "CPU" if tuned is None else f"cuDNN autotuner {'on ' if tuned else 'off'}"
            print(f"  {setting}: realized {speedup:.2f}x, realized / predicted "
                  f"{speedup / cascade['predicted']:.2f} (later stage gathered into full batches; per batch "
                  f"{split:.2f}x, {split / cascade['predicted']:.2f}; its last member alone {alone:.0f} samples/s)")
        print(f"  per batch, part by part ({'autotuner on; ' if device.type == 'cuda' else ''}"
              f"{cascade['going_on']:.0f} rows go on): "
              + ", ".join(f"{name} {ms:.1f} ms" for name, ms in cascade["stages"].items()))
    print(f"tolerances: max |Δp| <= {TOLERANCE['max_abs_diff']}, argmax agreement >= "
          f"{100 * TOLERANCE['argmax_agreement']:.0f}%: {'met' if ok else 'FAILED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
