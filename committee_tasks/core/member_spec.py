"""A member described without being built: its name, classes and cache key, and how to build it.

Describing costs a stat of the weight file at most (its sha256 comes from the memo, or from the
zoo entry when the file is gone), so a run whose outputs are all cached builds no model and does
not need the weights. The key is computed by the same functions `Member` uses, so a spec and the
member it builds always name the same cache folder.
"""
from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Mapping

from committee_tasks.core.errors import CommitteeError
from committee_tasks.core.zoo import RANDOM_INIT, ZooEntry, naming_the_model, weights_digest

if TYPE_CHECKING:
    from committee_tasks.core.members import Member


def transform_key(member: str, transform: Any) -> str:
    """Identifies a preprocessing; it is part of the cache key. A key that is not stable across
    runs (a lambda's repr) serves one session (a memory cache, a card used in it); what outlives
    the session checks it (`check_stable_key`)."""
    return repr(transform)


def check_stable_key(member: str, key: str, kept: str) -> None:
    """Refuse a preprocessing key holding a memory address where it must be found again by
    another run (``kept``: what would keep it, e.g. "a prediction cache on disk")."""
    if re.search(r" at 0x[0-9a-fA-F]+", key):
        raise CommitteeError(
            f"the preprocessing of member {member!r} has no stable repr ({key[:120]!r}): it holds a "
            f"memory address, so {kept} could never find it again. Use a transform class whose __repr__ "
            "lists its parameters (torchvision transforms do) instead of a lambda, or keep the "
            "predictions in memory (cache=\"memory\", --cache-dir memory)"
        )


def member_fingerprint(weights_sha256: str, transform_key: str, num_classes: int,
                       variant: Mapping[str, Any] | None = None) -> str:
    """The prediction cache's key of a member: its weights, preprocessing and classes, and what
    else changes its outputs (``ZooEntry.variant``: a state-dict key, a class map, a zoo file's
    builder and kwargs)."""
    fields: dict[str, Any] = {"weights": weights_sha256, "preprocessing": transform_key, "num_classes": num_classes}
    if variant:  # left out when empty: the keys of members without one stay what they were
        fields["variant"] = variant
    blob = json.dumps(fields, sort_keys=True, default=repr)  # repr: a zoo file's non-JSON kwargs (YAML dates)
    return hashlib.sha256(blob.encode()).hexdigest()


@dataclass
class MemberSpec:
    """What the loop and the cache need of a member, before (or instead of) building it.

    ``build()`` builds the member once (later calls return the same one) and checks it has the
    fingerprint described, so a task whose ``build_member`` and ``describe_member`` disagree is
    caught before anything is written under the wrong key.
    """

    name: str
    num_classes: int
    weights_sha256: str
    transform_key: str
    fingerprint: str
    entry: ZooEntry | None
    builder: Callable[[], "Member"] = field(repr=False, compare=False)
    _built: "Member | None" = field(default=None, init=False, repr=False, compare=False)
    cached_cost_note: str | None = field(default=None, init=False, repr=False, compare=False)  # from its cache

    @property
    def is_built(self) -> bool:
        return self._built is not None

    def build(self) -> "Member":
        if self._built is None:
            member = self.builder()
            if member.fingerprint != self.fingerprint:
                raise CommitteeError(
                    f"member {self.name!r} was described with fingerprint {self.fingerprint[:16]} but built "
                    f"with {member.fingerprint[:16]}: its task's describe_member and build_member disagree "
                    "(a task that overrides build_member must override describe_member to match)"
                )
            self._built = member
        return self._built

    def cost_note(self) -> str | None:
        """The built member's note on how its cost is made up; while unbuilt (the note may need
        the model, e.g. a video member's MACs per view), the note its cache recorded."""
        return self._built.cost_note() if self._built is not None else self.cached_cost_note


def describe_entry(name: str, entry: ZooEntry, weights_dir: Any, builder: Callable[[], "Member"]) -> MemberSpec:
    """The spec of a member built from ``entry`` as `Task.build_member` builds it by default:
    the entry's classes and preprocessing, its weights' sha256 (memo or recorded digest)."""
    with naming_the_model(name, entry.source):
        digest = RANDOM_INIT if entry.weights is None else weights_digest(entry.weights, weights_dir)
    key = transform_key(name, entry.preprocessing())
    fingerprint = member_fingerprint(digest, key, entry.num_classes, entry.variant)
    return MemberSpec(name, entry.num_classes, digest, key, fingerprint, entry, builder)
