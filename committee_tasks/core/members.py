"""Members: a built, loaded model with its own preprocessing and cost, and how a zoo entry's
weights are loaded into one.

Kept apart from `committee_tasks.core.task` so the task contract imports no torch: listing
tasks, models and datasets stays fast; building a member is where torch comes in.
"""
from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping

import numpy as np
import torch

from committee_tasks.core.checkpoints import load_fitting, read_checkpoint, read_state_dict
from committee_tasks.core.errors import CommitteeError
from committee_tasks.core.macs import count_macs
from committee_tasks.core.member_spec import member_fingerprint, transform_key
from committee_tasks.core.outputs import OutputSpec, output_spec
from committee_tasks.core.zoo import RANDOM_INIT, ZooEntry, naming_the_model, resolve_weights

if TYPE_CHECKING:
    from committee_tasks.core.task import Task

log = logging.getLogger(__name__)


def weights_state(module: torch.nn.Module) -> tuple:
    """What changes when a module's weights do: each parameter's and buffer's identity and version
    counter, which every in-place write bumps (an optimizer step, ``load_state_dict``, ``mul_``).
    Moving the module to a device or memory format keeps it."""
    return tuple((name, id(t), t._version) for name, t in (*module.named_parameters(), *module.named_buffers()))


class Member:
    """A built, loaded member: the module, its own preprocessing, and its cost.

    ``fingerprint`` hashes the weights and the preprocessing: it keys the prediction cache. Weights
    changed after the member was made (a notebook fine-tuning the module further) are hashed again
    when next asked for, so a changed module never reads the predictions of the one it was.
    """

    def __init__(self, name: str, module: torch.nn.Module, transform: Callable[[Any], torch.Tensor],
                 weights_sha256: str, num_classes: int, to_probs: Callable[[torch.Tensor], torch.Tensor],
                 entry: ZooEntry | None = None, variant: Mapping[str, Any] | None = None):
        self.name = name
        self.module = module.eval()
        self.transform = transform
        self.weights_sha256 = weights_sha256
        self.num_classes = num_classes
        self.to_probs = to_probs
        self.entry = entry
        self.variant = dict(variant or {})  # what else changes its outputs, where no zoo entry says (outputs=)
        self._macs_by_shape: dict[tuple, int] = {}
        self._outputs_checked = False
        self.declared_input_size: tuple[int, ...] | None = None  # from_module's input_size=

    @property
    def input_size(self) -> tuple[int, ...] | None:
        """The (channels, height, width) its inputs must have, where it is fixed: given to
        `from_module`, or by its zoo entry's crop. Samples of another size are skipped."""
        return self.declared_input_size or getattr(self.entry, "input_size", None)

    @classmethod
    def from_module(cls, module: torch.nn.Module, transform: Callable[[Any], torch.Tensor] | None = None, *,
                    name: str, num_classes: int | None = None, task: str | Task = "classification",
                    outputs: str | Mapping[str, Any] | OutputSpec | None = None,
                    input_size: tuple[int, ...] | None = None) -> Member:
        """A member from a module in memory: fingerprinted by the sha256 of its state dict, its
        preprocessing ``transform`` (default: the data is already a preprocessed array), its
        classes (default: the width of its last Linear/Conv layer, or of ``outputs``' class map)
        and what its outputs are: ``outputs`` "logits" (the task's ``to_probs``, a softmax, by
        default) or "probabilities" (a module ending in a softmax), or a zoo file's ``outputs``
        object (``{"type": ..., "class_map": [...]}``). ``task``: the task (or its name) of the pool
        it will be in, whose ``to_probs`` it uses; a pool of another task refuses it.
        ``input_size``: the (channels, height, width) its preprocessed inputs must have (e.g.
        (3, 32, 32)): samples of another size are skipped and counted, and a loaded committee
        refuses batches of it, where a convnet with global pooling would run at any size without
        a word."""
        from committee_tasks.core import in_memory
        from committee_tasks.core.registry import get_task

        task = get_task(task) if isinstance(task, str) else task
        spec = _output_spec(outputs, name)
        classes = num_classes or (len(spec.class_map) if spec and spec.class_map else in_memory.infer_num_classes(module))
        variant = {"outputs": spec.key()} if spec else {}
        if task.name != "classification":  # its outputs become probabilities by that task's rule: part of the key
            variant["task"] = task.name
        member = cls(name, module, transform or in_memory.AsTensor(), in_memory.state_dict_sha256(module), classes,
                     spec or task.to_probs, variant=variant or None)
        if input_size is not None:
            size = tuple(input_size) if isinstance(input_size, (list, tuple)) else ()
            if len(size) != 3 or not all(isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in size):
                raise CommitteeError(f"input_size {input_size!r} of {name!r}: give an image member's preprocessed "
                                     "input shape, (channels, height, width) as positive integers, e.g. (3, 32, 32)")
            member.declared_input_size = size
        return member

    @property
    def weights_sha256(self) -> str:
        """The sha256 of the weights loaded (a file's), or of the state dict once changed in place."""
        state = weights_state(self.module)
        if state != self._weights_state:
            from committee_tasks.core.in_memory import state_dict_sha256

            self._weights_sha256, self._weights_state = state_dict_sha256(self.module), state
        return self._weights_sha256

    @weights_sha256.setter
    def weights_sha256(self, digest: str) -> None:
        self._weights_sha256, self._weights_state = digest, weights_state(self.module)

    @property
    def transform_key(self) -> str:
        """Identifies the preprocessing; members with equal keys share the preprocessed tensor.

        It is part of the cache key, so it must be stable across runs."""
        return transform_key(self.name, self.transform)

    @property
    def fingerprint(self) -> str:
        variant = self.entry.variant if self.entry is not None else self.variant
        return member_fingerprint(self.weights_sha256, self.transform_key, self.num_classes, variant)

    def macs_per_sample(self, inputs: torch.Tensor) -> np.ndarray:
        """MACs of each sample of a batch, counted once per distinct input shape."""
        shape = tuple(inputs.shape[1:])
        if shape not in self._macs_by_shape:
            self._macs_by_shape[shape] = count_macs(self.module, inputs[:1].to(_module_device(self.module)))
        return np.full(len(inputs), self._macs_by_shape[shape], dtype=np.int64)

    @torch.no_grad()
    def predict(self, inputs: torch.Tensor) -> torch.Tensor:
        """Class probabilities (float32) of a batch already on the member's device."""
        raw = self.module(inputs)
        probs = self.to_probs(raw).float()
        if not self._outputs_checked:  # the first batch only: one look, one wait for the device
            self._outputs_checked = True
            warn_if_probabilities_made_again(self.name, raw, probs)
        return probs

    def predict_with_cost(self, inputs: torch.Tensor) -> tuple[torch.Tensor, np.ndarray]:
        """Probabilities and the MACs each sample actually cost. Members whose cost depends on
        the input (a video member that stops adding views once confident) override this."""
        return self.predict(inputs), self.macs_per_sample(inputs)

    def cost_note(self) -> str | None:
        """A line explaining how this member's per-sample cost is made up, for reports."""
        return None


def _output_spec(outputs: str | Mapping[str, Any] | OutputSpec | None, name: str) -> OutputSpec | None:
    if outputs is None or isinstance(outputs, OutputSpec):
        return outputs
    where = f"member {name!r}: "
    if isinstance(outputs, str):
        return OutputSpec(type=outputs, where=where)
    return output_spec(outputs, where)


def warn_if_probabilities_made_again(name: str, raw: torch.Tensor, probs: torch.Tensor) -> None:
    """Warn where a member's raw outputs are already probabilities (non-negative, each sample's
    summing to 1 over the classes) and its ``to_probs`` changed them: a module ending in a softmax,
    softmaxed again, whose flattened confidences no cascade threshold would pass."""
    if raw.dim() < 2 or raw.shape != probs.shape or not raw.is_floating_point():
        return
    raw = raw.detach().float()
    sums = raw.sum(dim=1)
    if bool((raw >= 0).all()) and bool(((sums - 1).abs() < 1e-2).all()) and not torch.allclose(raw, probs, atol=1e-3):
        log.warning("member %r outputs probabilities already (non-negative, summing to 1 for every sample), and a "
                    "softmax was applied to them again, flattening its confidences: if its forward ends in a "
                    "softmax, declare it: Member.from_module(..., outputs=\"probabilities\"), or in a zoo file "
                    "outputs: {type: probabilities}", name)


def load_checkpoint(path: str | Path, saved_as: str) -> Any:
    """A checkpoint file's content, read with ``weights_only`` (tensors and plain containers, no
    pickled code); a file that is not one is an error saying how to re-save it: as ``saved_as``."""
    return read_checkpoint(Path(path), saved_as)  # one reader, one message for every bad file


def build_module(entry: ZooEntry) -> torch.nn.Module:
    """``entry.builder()``; for an entry without weights, under a random seed of its own (from its
    name), so its random weights are the same in every run and whatever was built before it: its
    outputs are cached under the weight digest "random-init", which only that makes true."""
    if entry.weights is not None:
        return entry.builder()
    log.warning("model %r has no weights: it runs with random ones (seeded by its name, the same every run)",
                entry.name)
    seed = int.from_bytes(hashlib.sha256(f"random-init|{entry.name}".encode()).digest()[:8], "little")
    with torch.random.fork_rng(devices=[]):  # the caller's random state is left as it was
        torch.manual_seed(seed)
        return entry.builder()


def load_weights(entry: ZooEntry, module: torch.nn.Module, weights_dir: str | Path | None = None) -> str:
    """Load a zoo entry's weights into its built module (every key and shape must fit: the error
    lists what does not); returns their sha256, or "random-init" for an entry without weights."""
    if entry.weights is None:
        return RANDOM_INIT
    with naming_the_model(entry.name, entry.source):
        path, digest = resolve_weights(entry.weights, weights_dir)
    state = entry.state_dict_loader(path) if entry.state_dict_loader is not None else read_state_dict(path)
    load_fitting(module, state, path, entry.name)
    return digest


def _module_device(module: torch.nn.Module) -> torch.device:
    tensor = next(module.parameters(), None)
    return tensor.device if tensor is not None else torch.device("cpu")


def check_eval_mode(member: Member) -> None:
    """Refuse a member whose module was put back in training mode after it was built (a notebook
    fine-tuning it): BatchNorm would update its statistics from these batches and dropout draw at
    random, so its outputs would not be the ones its cache and cards hold."""
    if member.module.training:
        raise CommitteeError(f"member {member.name!r} is in training mode ({type(member.module).__name__}.training "
                             "is True): its outputs would not be those its cache and cards hold, and BatchNorm "
                             "layers would update their statistics; call .eval() on the member's module (or on "
                             "the committee)")
