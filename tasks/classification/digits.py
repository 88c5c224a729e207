"""The embedded default zoo: small CNNs of three sizes trained on scikit-learn's real handwritten
digits on first use (seeded, a few seconds on CPU) and cached like any downloaded weight file."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from committee_tasks.cache import atomic_write

# Pixel statistics of the digits training split (0..16 grey levels scaled to 0..1).
DIGITS_MEAN, DIGITS_STD = 0.3054, 0.3759
# name -> (channel widths of the three conv stages, training epochs)
DIGITS_MODELS = {
    "digits_cnn_s": ((8, 16, 16), 40),
    "digits_cnn_m": ((16, 32, 64), 40),
    "digits_cnn_l": ((32, 64, 128), 40),
}
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


def train_digits_model(name: str, destination: Path) -> None:
    """Train ``name`` on the digits training split and write its state dict atomically."""
    from .datasets import digits_split

    widths, epochs = DIGITS_MODELS[name]
    images, labels, _ = digits_split()["train"]
    transform = DigitsTransform()
    x = torch.stack([transform(img) for img in images])
    y = torch.as_tensor(labels)
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
    atomic_write(destination, lambda f: torch.save(model.state_dict(), f))
