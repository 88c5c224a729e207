"""Member subsets and their output sums, shared by the search (from cached outputs) and the
loop (statistics-caching tasks, while the outputs are in memory)."""
from __future__ import annotations

import itertools
from typing import Iterator, Sequence

import torch


def member_subsets(count: int, max_size: int) -> list[tuple[int, ...]]:
    """Every subset of up to ``max_size`` of ``count`` members, as sorted index tuples."""
    return [s for k in range(1, min(max_size, count) + 1) for s in itertools.combinations(range(count), k)]


def subset_sums(outputs: Sequence[torch.Tensor], max_size: int, buffers: torch.Tensor | None = None
                ) -> Iterator[tuple[tuple[int, ...], torch.Tensor]]:
    """Depth-first ``(subset, sum of its members' outputs)`` for every subset of up to
    ``max_size`` members, each sum made from its parent's with one add, in member order.

    With ``buffers`` of shape (max_size, *output shape) a k-member subset's sum is written into
    ``buffers[k - 1]`` (no allocation per subset); it stays valid until the next k-member subset."""
    # An explicit stack, not a recursive closure: a closure that refers to itself is a reference
    # cycle, which would keep every batch's outputs alive until the cyclic garbage collector runs.
    stack: list[tuple[tuple[int, ...], torch.Tensor | None]] = [((m,), None) for m in reversed(range(len(outputs)))]
    while stack:
        subset, parent = stack.pop()
        last = outputs[subset[-1]]
        if parent is None:
            total = last
        elif buffers is None:
            total = parent + last
        else:
            total = torch.add(parent, last, out=buffers[len(subset) - 1])
        yield subset, total
        if len(subset) < max_size:  # children next (depth-first), while ``total`` is still valid
            stack.extend((subset + (m,), total) for m in reversed(range(subset[-1] + 1, len(outputs))))
