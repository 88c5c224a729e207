"""Compatibility shims for third-party packages that lag behind current torch/torchvision.

Every workaround for an upstream breakage lives here, with why it is needed and when it can go.
Nothing else in the toolkit patches another package.
"""
from __future__ import annotations

import importlib
import sys
import warnings

from .errors import CommitteeError


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
    try:
        with warnings.catch_warnings():  # its layers call torch.jit.script at import (deprecated, harmless)
            warnings.filterwarnings("ignore", message=r".*torch\.jit\.script.*", category=FutureWarning)
            import pytorchvideo.models.hub  # noqa: F401  (everything the video task uses)
        return importlib.import_module("pytorchvideo")
    except ImportError as err:
        raise CommitteeError(
            f"the video task needs pytorchvideo ({err}); install it with "
            "`pip install 'committee-tasks[video]'` (pytorchvideo==0.1.5 decord==0.6.0 av), "
            "or rerun tools/setup_env.sh"
        ) from err
