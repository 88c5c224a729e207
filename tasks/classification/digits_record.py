"""What the zoo lists of the embedded digits CNNs, without torch: their names and widths, where
their shipped checkpoints are, and the record of how they were trained and what they score
(written by ``tools/train_digits.py``; the models themselves are in ``digits.py``)."""
from __future__ import annotations

import json
from pathlib import Path

# name -> (channel widths of the three conv stages, training epochs)
DIGITS_MODELS = {
    "digits_cnn_s": ((8, 16, 16), 40),
    "digits_cnn_m": ((16, 32, 64), 40),
    "digits_cnn_l": ((32, 64, 128), 40),
}
WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
RECORD_NAME = "digits.json"  # in WEIGHTS_DIR: file, sha256, test top-1 and training settings per model


def load_record(weights_dir: Path = WEIGHTS_DIR) -> dict:
    """The record of the shipped checkpoints ({} when the folder is missing, e.g. a broken install)."""
    path = weights_dir / RECORD_NAME
    return json.loads(path.read_text()) if path.is_file() else {}
