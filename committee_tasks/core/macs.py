"""Multiply-add (MAC) counting with PyTorch's own flop counter.

`torch.utils.flop_counter.FlopCounterMode` counts 2 FLOPs per multiply-add; we halve it so every
figure in this toolkit is MACs (multiply-adds) per sample, the convention of torchvision's
`meta['_ops']` and of the papers. Two gaps of the counter are closed here:

* `nn.MultiheadAttention` in eval mode takes a fused "fast path" (`_native_multi_head_attention`)
  the counter has no formula for, so ViTs read ~36% low; we disable the fast path while counting.
* On CPU, `scaled_dot_product_attention` dispatches to `_scaled_dot_product_flash_attention_for_cpu`,
  which the counter does not map either; we map it to the counter's own SDPA formula.

Only matmuls, convolutions and attention are counted (as torchvision does); element-wise ops,
normalisation and pooling are not.
"""
from __future__ import annotations

import contextlib
from typing import Any

import torch
from torch.utils import flop_counter


def _cpu_sdpa_flops(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
    return flop_counter.sdpa_flop_count(query_shape, key_shape, value_shape)


_EXTRA_FORMULAS = {}
if hasattr(torch.ops.aten, "_scaled_dot_product_flash_attention_for_cpu"):
    _EXTRA_FORMULAS[torch.ops.aten._scaled_dot_product_flash_attention_for_cpu] = _cpu_sdpa_flops


@contextlib.contextmanager
def _mha_fastpath_disabled():
    mha = getattr(torch.backends, "mha", None)
    if mha is None:  # older torch: no fast-path switch
        yield
        return
    previous = mha.get_fastpath_enabled()
    mha.set_fastpath_enabled(False)
    try:
        yield
    finally:
        mha.set_fastpath_enabled(previous)


class MacCount:
    """Multiply-adds counted inside a `mac_counter` block (read ``macs`` after it)."""

    macs: int = 0


@contextlib.contextmanager
def mac_counter():
    """Count the multiply-adds of everything run inside the block (e.g. a real forward pass, so a
    model whose cost depends on its input is counted without a second pass)."""
    result = MacCount()
    with _mha_fastpath_disabled(), flop_counter.FlopCounterMode(
        display=False, custom_mapping=_EXTRA_FORMULAS
    ) as counter:
        yield result
    result.macs = counter.get_total_flops() // 2


@torch.no_grad()
def count_macs(model: torch.nn.Module, *inputs: Any) -> int:
    """Multiply-adds of one forward pass of `model(*inputs)` (total over the batch in `inputs`)."""
    with mac_counter() as counted:
        model(*inputs)
    return counted.macs
