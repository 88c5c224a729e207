"""What a member's raw outputs are and which of their channels are the dataset's classes.

A zoo file's ``outputs`` field: ``{"type": "logits" | "probabilities", "class_map": [...]}``.
``class_map[i]`` is the output channel holding the dataset's class ``i``: it selects, drops or
reorders channels (drop a "void" channel, align a 1000-class model to a 10-class subset). The
probabilities over the selected channels are renormalised, which for logits is the softmax of the
selected logits. Segmentation adds how the outputs reach the label resolution (``stride``,
``upsample``, ``align_corners``).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Mapping

from committee_tasks.core.errors import CommitteeError

if TYPE_CHECKING:
    import torch

OUTPUT_TYPES = ("logits", "probabilities")
UPSAMPLE_MODES = ("bilinear", "nearest", "bicubic")


@dataclass(frozen=True)
class OutputSpec:
    """How a member's outputs become class probabilities (channel dimension 1).

    ``where`` names the zoo entry in errors; it is not part of the cache key."""

    type: str | None = None  # None: the task's default (logits; a video head ending in a softmax: probabilities)
    class_map: tuple[int, ...] | None = None
    stride: int | None = None  # segmentation: outputs at 1/stride of the input size
    upsample: str = "bilinear"  # segmentation: resizing the outputs to the label resolution
    align_corners: bool = False
    where: str = field(default="", compare=False, repr=False)

    def __post_init__(self):
        if self.type is not None and self.type not in OUTPUT_TYPES:
            raise CommitteeError(f"{self.where}outputs type {self.type!r} is not one of {list(OUTPUT_TYPES)}")
        if self.upsample not in UPSAMPLE_MODES:
            raise CommitteeError(f"{self.where}upsample mode {self.upsample!r} is not one of {list(UPSAMPLE_MODES)}")
        if self.class_map is not None:
            bad = [c for c in self.class_map if not isinstance(c, int) or isinstance(c, bool) or c < 0]
            if bad or not self.class_map or len(set(self.class_map)) != len(self.class_map):
                raise CommitteeError(f"{self.where}class_map must list distinct output channels (integers >= 0), "
                                     f"one per class of the dataset; got {list(self.class_map)}")
        if self.stride is not None and (not isinstance(self.stride, int) or self.stride < 1):
            raise CommitteeError(f"{self.where}stride must be a positive integer, got {self.stride!r}")

    def key(self) -> dict[str, Any]:
        """What changes the probabilities (for the cache key): every field but ``where``."""
        return {"type": self.type, "class_map": list(self.class_map) if self.class_map else None,
                "stride": self.stride, "upsample": self.upsample, "align_corners": self.align_corners}

    def select(self, outputs: torch.Tensor) -> torch.Tensor:
        """The class-map channels of ``outputs`` (N, C, ...), in the dataset's class order."""
        if self.class_map is None:
            return outputs
        channels = outputs.shape[1]
        out_of_range = [c for c in self.class_map if c >= channels]
        if out_of_range:
            raise CommitteeError(f"{self.where}class_map names output channels {out_of_range}, but the model "
                                 f"outputs {channels} channels (0..{channels - 1}): fix the class map")
        import torch

        index = torch.tensor(self.class_map, device=outputs.device)
        return outputs.index_select(1, index)

    def __call__(self, outputs: torch.Tensor) -> torch.Tensor:
        """Class probabilities (float32) over the class map's channels."""
        import torch

        selected = self.select(outputs.float())
        if self.type != "probabilities":
            return torch.softmax(selected, dim=1)
        if self.class_map is None:
            return selected
        return selected / selected.sum(dim=1, keepdim=True).clamp_min(torch.finfo(torch.float32).tiny)


def output_spec(value: Any, where: str = "", extra: tuple[str, ...] = ()) -> OutputSpec:
    """An `OutputSpec` from a zoo file's ``outputs`` value (a mapping); ``extra``: the task's own
    keys besides ``type`` and ``class_map`` (segmentation: stride, upsample, align_corners)."""
    if not isinstance(value, Mapping):
        raise CommitteeError(f"{where}outputs must be an object like "
                             '{"type": "logits", "class_map": [0, 1, 2]}, got ' + repr(value))
    known = ("type", "class_map", *extra)
    unknown = sorted(set(value) - set(known))
    if unknown:
        raise CommitteeError(f"{where}unknown outputs field(s) {unknown}; valid: {list(known)}")
    fields = dict(value)
    if fields.get("class_map") is not None:
        if not isinstance(fields["class_map"], (list, tuple)):
            raise CommitteeError(f"{where}class_map must be a list of output channels, got {fields['class_map']!r}")
        fields["class_map"] = tuple(fields["class_map"])
    return OutputSpec(**fields, where=where)
