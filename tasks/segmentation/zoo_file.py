"""Segmentation models of a zoo file: an mmseg config (``config``, or an mmseg ``base``), or any
plain PyTorch module (``builder``) with its ``preprocessing`` and ``outputs``.

A plain module takes the normalised image (N, 3, H, W) and returns class scores at
``1/stride`` of that size; they are resized to the label map's size (``upsample``,
``align_corners``) before the class map and the softmax. ``preprocessing`` is applied on the device
to the decoded image: ``resize`` (the shorter side, or [height, width]; default: as it is),
``channels`` (RGB or BGR), ``(pixels / scale - mean) / std``, and ``size_divisor``: padded (right and
bottom, 0 after normalising) to a multiple of it for a network that takes only such sizes, the
outputs cropped back, as mmseg's data preprocessor and post-processing do.
"""
from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Mapping

from committee_tasks.core.image_preprocessing import ImagePreprocessing
from committee_tasks.core.lazy_call import lazy_call
from committee_tasks.core.zoo import ZooEntry

from .zoo import CLASSES_FROM_CONFIG, config_entry, load_state_dict

if TYPE_CHECKING:
    from committee_tasks.core.zoo_files import ZooFileModel

FIELDS = {
    "config": "an mmseg config file (its model, test pipeline and test_cfg; weights in mmseg's format)",
    "preprocessing": "plain modules: {resize, interpolation, mean, std, scale, channels, size_divisor}",
}
OUTPUT_FIELDS = ("stride", "upsample", "align_corners")
DEVICE_INPUT = f"{__package__}.members:DeviceInput"


def entry_from_zoo_file(model: ZooFileModel, base: ZooEntry | None) -> ZooEntry:
    config = model.get("config")
    if config is not None or (base is not None and "config" in base.notes and model.get("builder") is None):
        return _mmseg_entry(model, base, config)
    if model.get("builder") is None:
        raise model.error("builder", "missing: give an mmseg 'config', a 'builder' (package.module:function) or an "
                          "mmseg 'base' model")
    given = model.get("preprocessing")
    if given is None:
        raise model.error("preprocessing", "missing: a plain module needs {mean, std, scale, channels, resize}")
    given = dict(given) if isinstance(given, Mapping) else given
    divisor = given.pop("size_divisor", None) if isinstance(given, dict) else None
    if divisor is not None and (isinstance(divisor, bool) or not isinstance(divisor, int) or divisor < 1):
        raise model.error("preprocessing", f"size_divisor must be a positive integer, got {divisor!r}")
    spec = ImagePreprocessing.from_dict(given, model.where)
    if spec.crop is not None:
        raise model.error("preprocessing", "a crop would cut the image away from its label map; leave 'crop' out")
    padding = {"size_divisor": divisor} if divisor else {}  # left out when not given: cache keys stay
    preprocessing = lazy_call(DEVICE_INPUT, **padding, **spec.to_dict())
    return model.entry("segmentation", base, preprocessing, (3,))


def _mmseg_entry(model: ZooFileModel, base: ZooEntry | None, config: str | None) -> ZooEntry:
    for name in ("builder", "kwargs", "preprocessing"):
        if model.get(name) is not None:
            raise model.error(name, "an mmseg model is built from its config, which sets its preprocessing; leave "
                              f"{name!r} out")
    if config is not None:
        path = model.path(config)
        if not path.is_file():
            raise model.error("config", f"{path} does not exist")
        base = config_entry(model.name, path, None, -1, "?", {}, f"zoo file {model.file}")
    entry = model.entry("segmentation", base, base.preprocessing, (3,), checkpoint_format=load_state_dict)
    if entry.outputs is not None:  # the segmentor outputs probabilities already
        entry = dataclasses.replace(entry, outputs=dataclasses.replace(entry.outputs, type="probabilities"))
    if model.get("num_classes") is None and entry.outputs is None:
        # read from the config when the member is used (`SegmentationTask.model_entry`), not now: an
        # mmseg config is Python, and listing or reading a zoo file must run none of it
        entry = dataclasses.replace(entry, notes={**entry.notes, CLASSES_FROM_CONFIG: True})
    return entry
