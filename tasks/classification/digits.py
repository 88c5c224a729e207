"""The embedded default zoo: small CNNs of three sizes trained on scikit-learn's real handwritten
digits. The trained checkpoints ship in ``weights/`` (sha256-checked like any zoo weight) with a
record of how they were made and what they score, so every machine evaluates the same weights:
training is not bit-reproducible across thread counts or CPUs (different kernels, different sums).
``tools/train_digits.py`` is the script that trained them; a test checks it still trains models of
the recorded accuracy."""
from __future__ import annotations

import hashlib
import platform
from pathlib import Path

import numpy as np
import torch
from torch import nn

from committee_tasks.core.files import atomic_write, atomic_write_json

from .digits_record import DIGITS_MODELS, RECORD_NAME

# Pixel statistics of the digits training split (0..16 grey levels scaled to 0..1).
DIGITS_MEAN, DIGITS_STD = 0.3054, 0.3759
TRAIN_SEED = 0


class DigitsCNN(nn.Module):
    def __init__(self, widths: tuple[int, int, int], num_classes: int = 10):
        super().__init__()
        a, b, c = widths

        def block(cin, cout):
            return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]

        self.features = nn.Sequential(*block(1, a), *block(a, b), nn.MaxPool2d(2), *block(b, c),
                                      nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.classifier = nn.Linear(c, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


class DigitsTransform:
    """(8, 8) grey levels 0..16 -> normalised (1, 8, 8) float tensor."""

    def __call__(self, image: np.ndarray) -> torch.Tensor:
        x = torch.as_tensor(np.asarray(image, dtype=np.float32) / 16.0)
        return ((x - DIGITS_MEAN) / DIGITS_STD).unsqueeze(0)

    def __repr__(self) -> str:
        return f"DigitsTransform(scale=1/16, mean={DIGITS_MEAN}, std={DIGITS_STD})"


def _split_tensors(split: str) -> tuple[torch.Tensor, torch.Tensor]:
    from .datasets import digits_split

    images, labels, _ = digits_split()[split]
    transform = DigitsTransform()
    return torch.stack([transform(img) for img in images]), torch.as_tensor(labels)


def train_digits_model(name: str) -> DigitsCNN:
    """Train ``name`` on the digits training split (seeded; AdamW, one-cycle schedule, small shifts)."""
    widths, epochs = DIGITS_MODELS[name]
    x, y = _split_tensors("train")
    generator = torch.Generator().manual_seed(TRAIN_SEED)
    torch.manual_seed(TRAIN_SEED)
    model = DigitsCNN(widths)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=3e-3, total_steps=epochs * -(-len(x) // 64))
    model.train()
    for _ in range(epochs):
        for idx in torch.randperm(len(x), generator=generator).split(64):
            # Small random shifts: the members then differ in more than their width.
            shift = tuple(torch.randint(-1, 2, (2,), generator=generator).tolist())
            loss = nn.functional.cross_entropy(model(torch.roll(x[idx], shift, dims=(2, 3))), y[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
    return model.eval()


@torch.no_grad()
def top1_on_test_split(model: nn.Module) -> float:
    """Top-1 (%) on the held-out digits test split (599 images), float32 on the CPU."""
    x, y = _split_tensors("test")
    return 100.0 * float((model.eval()(x).argmax(dim=1) == y).float().mean())


def train_all(out_dir: Path, names=tuple(DIGITS_MODELS), threads: int = 1) -> dict:
    """Train every digits model into ``out_dir`` and write the record the zoo reads; returns it.

    One torch thread by default: the same machine then gives the same weights on every run."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        record = {}
        for name in names:
            model = train_digits_model(name)
            blob = _state_bytes(model)
            sha256 = hashlib.sha256(blob).hexdigest()
            file_name = f"{name}-{sha256[:8]}.pt"
            atomic_write(out_dir / file_name, lambda f: f.write(blob))
            record[name] = {"file": file_name, "sha256": sha256, "top-1": round(top1_on_test_split(model), 2),
                            "params": sum(p.numel() for p in model.parameters()),
                            "training": {"seed": TRAIN_SEED, "epochs": DIGITS_MODELS[name][1], "torch_threads": threads,
                                         "torch": torch.__version__, "machine": platform.machine()}}
    finally:
        torch.set_num_threads(before)
    atomic_write_json(out_dir / RECORD_NAME, record)
    return record


def _state_bytes(model: nn.Module) -> bytes:
    import io

    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    return buffer.getvalue()
