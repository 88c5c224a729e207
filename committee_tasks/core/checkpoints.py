"""Reading a state dict out of a checkpoint file, and the error when it does not fit a model.

Checkpoints come in many shapes: a plain state dict, ``{"model": ...}`` / ``{"state_dict": ...}``
with training state around it, keys prefixed ``module.`` by ``nn.DataParallel``, safetensors.
A zoo entry says where its weights sit (``key``) and which prefix to strip; when they do not fit,
the error lists the missing *and* the unexpected keys and names the option that fixes it.
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Mapping

from committee_tasks.core.errors import CommitteeError

if TYPE_CHECKING:
    import torch

SHOWN_KEYS = 8  # keys listed per kind before "... and N more"


def read_checkpoint(path: str | Path, saved_as: str = "torch.save(model.state_dict(), ...) or as safetensors"
                    ) -> Any:
    """A checkpoint's content: safetensors, or torch.load with ``weights_only`` (no pickled code).
    A file that cannot be read is a `CommitteeError` naming it and why (see `checkpoint_error`)."""
    path = Path(path)
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(path), device="cpu")
        import torch

        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch and safetensors raise many kinds (RuntimeError, EOFError, UnpicklingError)
        raise checkpoint_error(path, err, saved_as) from err


def checkpoint_error(path: Path, err: Exception, saved_as: str) -> CommitteeError:
    """Why ``path`` could not be loaded, in our words: a pickle naming a Python global (code that a
    weights-only load refuses to call) is named as such; anything else is a damaged file. torch's
    own text advises ``weights_only=False``, which would run that code: it is never passed on."""
    if isinstance(err, OSError) and not isinstance(err, EOFError):
        return CommitteeError(f"cannot read checkpoint {path} ({type(err).__name__}: {err.strerror or err})")
    text = str(err)
    refused = re.search(r"GLOBAL ([\w.]+)", text)
    if refused:
        return CommitteeError(
            f"refused to load {path}: its pickle names the Python global {refused[1]!r}, which a weights-only load "
            "never calls (a checkpoint holds tensors and plain containers; this one would run code). Use a "
            f"checkpoint from a source you trust, re-saved as {saved_as}")
    detail = re.search(r"WeightsUnpickler error:\s*(.+)", text)
    detail = detail[1].strip() if detail else next((line for line in text.splitlines() if line.strip()), "")
    detail = detail.split(". ")[0][:200]  # torch's first sentence; its advice about weights_only is cut off
    if "weights_only" in detail:
        detail = ""
    why = type(err).__name__ + (f": {detail}" if detail else ("" if text else ": the file ends early"))
    return CommitteeError(f"cannot load {path}: not a readable checkpoint ({why}); it may be truncated or corrupt: "
                          "delete it if it was downloaded (the next run fetches it again), or re-save it as "
                          f"{saved_as}")


def read_state_dict(path: str | Path, key: str | None = None, strip_prefix: str | None = None
                    ) -> Mapping[str, torch.Tensor]:
    """The state dict in ``path``: under ``key`` (dots reach into nested dicts: ``"model.ema"``),
    with ``strip_prefix`` removed from the keys that start with it."""
    state = read_checkpoint(path)
    for part in key.split(".") if key else ():
        if not isinstance(state, Mapping) or part not in state:
            found = sorted(state)[:SHOWN_KEYS] if isinstance(state, Mapping) else type(state).__name__
            raise CommitteeError(f"{path} has no {part!r} (weights key {key!r}); its top level holds {found}: set the "
                                 "weights' key to the one holding the state dict")
        state = state[part]
    if not isinstance(state, Mapping):
        raise CommitteeError(f"{path}{f' under {key!r}' if key else ''} holds a {type(state).__name__}, not a state "
                             "dict: set the weights' key to the entry holding the state dict")
    if strip_prefix:
        state = {k.removeprefix(strip_prefix): v for k, v in state.items()}
    return dict(state)


def _listed(keys: Iterable[str]) -> str:
    keys = sorted(keys)
    shown = ", ".join(repr(k) for k in keys[:SHOWN_KEYS])
    return shown + (f" ... and {len(keys) - SHOWN_KEYS} more" if len(keys) > SHOWN_KEYS else "")


def _common_prefix(keys: Iterable[str]) -> str | None:
    """The first dotted component every key shares (``module.``), if any."""
    firsts = {k.split(".", 1)[0] + "." for k in keys if "." in k}
    return firsts.pop() if len(firsts) == 1 and all("." in k for k in keys) else None


def _fix(state: Mapping[str, Any], expected: Iterable[str]) -> str:
    """Which zoo option would make ``state`` fit (a key holding the state dict, a prefix)."""
    expected = set(expected)
    nested = [k for k, v in state.items() if isinstance(v, Mapping)]
    if nested:
        return (f" The file holds a dict with entries {sorted(state)[:SHOWN_KEYS]}: set the weights' key to the one "
                f"holding the state dict (e.g. \"weights\": {{\"path\": ..., \"key\": {json.dumps(nested[0])}}}).")
    prefix = _common_prefix(state)
    if prefix == "." and {k.removeprefix(prefix) for k in state} & expected:  # "module" stripped from "module.x"
        return (" Every key starts with '.': the strip_prefix removed a prefix but not its dot; end it with the dot "
                "(\"strip_prefix\": \"module.\", not \"module\").")
    if prefix and {k.removeprefix(prefix) for k in state} & expected:
        return (f" Every key starts with {prefix!r} (e.g. a model saved from nn.DataParallel): set "
                f"\"strip_prefix\": {json.dumps(prefix)} in the weights.")
    return (" Check that the builder and its kwargs make the architecture these weights were saved from "
            "(the number of classes, the variant).")


def load_fitting(module: torch.nn.Module, state: Mapping[str, Any], path: str | Path, name: str) -> None:
    """Load ``state`` into ``module`` with every key and shape fitting (as ``strict=True`` defines
    it: old BatchNorm checkpoints without ``num_batches_tracked`` fit), or an error listing the
    missing, unexpected and mis-shaped keys (none hidden) and the option that fixes them."""
    import torch

    expected = module.state_dict()
    shapes = [f"{k} {tuple(getattr(state[k], 'shape', ()))} vs {tuple(expected[k].shape)}" for k in expected
              if k in state and (not isinstance(state[k], torch.Tensor) or state[k].shape != expected[k].shape)]
    if shapes:  # load_state_dict would stop at the first; list what else differs by name
        missing = [k for k in expected if k not in state and not k.endswith("num_batches_tracked")]
        unexpected = [k for k in state if k not in expected]
    else:  # torch's own rule of what is missing or unexpected (the module is discarded on error)
        missing, unexpected = module.load_state_dict(state, strict=False)
    if missing or unexpected or shapes:
        parts = [f"{len(missing)} missing key(s): {_listed(missing)}" if missing else "",
                 f"{len(unexpected)} unexpected key(s): {_listed(unexpected)}" if unexpected else "",
                 f"{len(shapes)} of another shape (file vs model): {_listed(shapes)}" if shapes else ""]
        raise CommitteeError(f"{path} does not fit {name}'s architecture: " + "; ".join(p for p in parts if p)
                             + "." + _fix(state, expected))
