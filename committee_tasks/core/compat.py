"""Compatibility shims for third-party packages that lag behind current torch/torchvision.

Every workaround for an upstream breakage lives here, with why it is needed and when it can go.
Nothing else in the toolkit patches another package.
"""
from __future__ import annotations

import importlib
import importlib.util
import sys
import warnings
from pathlib import Path

from committee_tasks.core.errors import CommitteeError

MMSEG_INSTALL = ("install it with `pip install 'committee-tasks[segmentation]'` (mmengine==0.10.7 mmcv-lite==2.1.0 "
                 "mmsegmentation==1.2.2 ftfy regex), or rerun tools/setup_env.sh")


def _import_or_explain(module: str, package: str, failure: str, hide: tuple[str, type[Warning]] | None = None):
    """Import ``module`` and return ``package``, hiding the harmless warning ``hide`` (message
    pattern, category) the import gives; an ImportError is a `CommitteeError` saying ``failure``,
    in which ``{err}`` stands for the ImportError and ``{kind}`` for its class name."""
    try:
        with warnings.catch_warnings():
            if hide is not None:
                warnings.filterwarnings("ignore", message=hide[0], category=hide[1])
            importlib.import_module(module)
        return importlib.import_module(package)
    except ImportError as err:
        raise CommitteeError(failure.format(err=err, kind=type(err).__name__)) from err


def import_pytorchvideo():
    """Import pytorchvideo 0.1.5 (its latest release) on current torchvision.

    pytorchvideo.transforms imports ``torchvision.transforms.functional_tensor``, which torchvision
    renamed to ``_functional_tensor`` (0.17) and then removed under the old name. Registering the
    new module under the old name makes every pytorchvideo module import; the functions it uses
    (``resize``, ``crop`` helpers) kept their signatures. Drop this once pytorchvideo releases a fix.
    """
    try:
        import torchvision.transforms._functional_tensor as functional_tensor
    except ImportError:  # older torchvision still has the public module
        functional_tensor = None
    if functional_tensor is not None:
        sys.modules.setdefault("torchvision.transforms.functional_tensor", functional_tensor)
    # pytorchvideo.models.hub: everything the video task uses; its layers call torch.jit.script at
    # import (deprecated, harmless)
    return _import_or_explain("pytorchvideo.models.hub", "pytorchvideo",
                              "the video task needs pytorchvideo ({err}); install it with "
                              "`pip install 'committee-tasks[video]'` (pytorchvideo==0.1.5 decord==0.6.0 av), "
                              "or rerun tools/setup_env.sh", hide=(r".*torch\.jit\.script.*", FutureWarning))


# Compiled-only mmcv ops some mmseg modules import by name. Without mmcv's C++/CUDA extension
# (mmcv-lite) they raise ModuleNotFoundError on access, which mmseg's own guards expect, and the
# models that need them fail at build time with a message naming the op.
_COMPILED_ONLY_OPS = ("CrissCrossAttention", "PSAMask", "sigmoid_focal_loss", "DeformConv2d",
                      "ModulatedDeformConv2d", "MultiScaleDeformableAttention", "CARAFEPack", "RoIAlign", "nms")

# Models (mmseg config folder names) that need a full mmcv build with compiled ops, or mmdet.
NEEDS_FULL_MMCV = {"ccnet": "CrissCrossAttention", "psanet": "PSAMask", "dnlnet": "compiled ops",
                   "mask2former": "mmdet", "maskformer": "mmdet", "knet": "mmdet (some heads)"}


class MissingCompiledOpError(ModuleNotFoundError):
    """An mmcv op that exists only in mmcv's compiled extension, which is not installed."""


def _missing_op(name: str):
    def fail(*args, **kwargs):
        raise MissingCompiledOpError(_missing_op_message(name))
    fail.__name__ = name
    return fail


def _missing_op_message(name: str) -> str:
    return (f"mmcv op {name!r} needs mmcv's compiled extension, which mmcv-lite lacks; install a full "
            "mmcv 2.1.0 build with ops (e.g. `mim install mmcv==2.1.0` on a CUDA machine) to use models that "
            f"need it (CCNet, PSANet, ...). Models that run without it: SegFormer, PSPNet, DeepLabV3(+), FCN, "
            "UPerNet, PointRend, ...")


def import_mmseg():
    """Import mmsegmentation 1.2.2 models on mmcv-lite (mmcv without compiled ops).

    ``mmcv/ops/__init__.py`` loads the compiled extension (``mmcv._ext``) at once, so with
    mmcv-lite ``import mmseg.models`` fails even for models that need no compiled op. When the
    extension is absent we register ``mmcv.ops`` as a bare package (its submodules still import
    from its folder) exposing the pure-PyTorch ``point_sample`` (PointRend, SAN) and, for
    compiled-only ops, stand-ins that raise `MissingCompiledOpError` naming the op. With a full
    mmcv build nothing is patched. Drop this when mmseg imports ops lazily.
    """
    try:
        import mmcv  # noqa: F401
        import mmengine  # noqa: F401
    except ImportError as err:
        raise CommitteeError(f"the segmentation task needs mmsegmentation ({err}); {MMSEG_INSTALL}") from err
    if "mmcv.ops" not in sys.modules and importlib.util.find_spec("mmcv._ext") is None:
        _register_bare_mmcv_ops()
    # mmcv-lite warns "install mmcv rather than mmcv-lite if you need this op"
    return _import_or_explain("mmseg.models", "mmseg", "cannot import mmseg.models ({kind}: {err}); the segmentation "
                              "task is tested with mmsegmentation==1.2.2 and mmcv-lite==2.1.0",
                              hide=(r".*mmcv-lite.*", UserWarning))


def mmseg_folder() -> Path:
    """mmsegmentation's package folder, found without importing it (importing it takes seconds):
    its metafiles and configs are all that listing the segmentation zoo reads."""
    spec = importlib.util.find_spec("mmseg")
    if spec is None or not spec.submodule_search_locations:
        raise CommitteeError(f"the segmentation task needs mmsegmentation (not installed); {MMSEG_INSTALL}")
    return Path(spec.submodule_search_locations[0])


def _register_bare_mmcv_ops() -> None:
    import types

    import mmcv

    spec = importlib.util.find_spec("mmcv.ops")
    ops = types.ModuleType("mmcv.ops", "mmcv.ops without the compiled extension (committee_tasks.core.compat)")
    ops.__path__ = list(spec.submodule_search_locations)
    ops.__package__ = "mmcv.ops"
    ops.__spec__ = spec
    sys.modules["mmcv.ops"] = ops
    mmcv.ops = ops
    point_sample = importlib.import_module("mmcv.ops.point_sample")  # pure PyTorch
    ops.point_sample = point_sample.point_sample
    ops.SimpleRoIAlign = point_sample.SimpleRoIAlign
    ops.rel_roi_point_to_rel_img_point = point_sample.rel_roi_point_to_rel_img_point
    for name in _COMPILED_ONLY_OPS:
        setattr(ops, name, _missing_op(name))

    def __getattr__(name: str):  # any other compiled op: the error mmseg's import guards expect
        if name.startswith("__"):
            raise AttributeError(name)
        raise MissingCompiledOpError(_missing_op_message(name))

    ops.__getattr__ = __getattr__


def import_decord():
    """Import decord 0.6.0 without breaking OpenCV.

    decord's wheel bundles its own zlib; loaded before OpenCV's, it makes ``cv2.imread`` fail on
    every PNG ("libpng error: bad parameters to zlib"), which breaks mmseg's image loading in the
    same process. Importing cv2 first (when installed) keeps both working.
    """
    try:
        import cv2  # noqa: F401  (must come first: see above)
    except ImportError:
        pass
    return _import_or_explain("decord", "decord", "the video task decodes with decord ({err}); install it with "
                              "`pip install 'committee-tasks[video]'`, or rerun tools/setup_env.sh")
