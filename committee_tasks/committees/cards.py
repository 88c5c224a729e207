"""Committee cards: a chosen committee as a small JSON file a user takes away and runs.

A card names the task, the members in order (zoo name and the fingerprint of the weights and
preprocessing they were chosen with), the thresholds, confidence, combine rule, temperatures and
output dtype, and the figures the committee was chosen with, plus provenance. Loading a card
(`committee_tasks.engine.runnable.load_committee`) gives a module that runs it with real early exit
and refuses members whose fingerprint differs from the card's.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

import numpy as np

from committee_tasks.committees.confidence import DEFAULT_CONFIDENCE, confidence_names
from committee_tasks.committees.scoring import Cascade, Ensemble, Single
from committee_tasks.committees.temperature import check_temperature
from committee_tasks.core.errors import CommitteeError
from committee_tasks.core.precision import OUTPUT_DTYPE_NAMES
from committee_tasks.core.provenance import provenance as current_provenance

if TYPE_CHECKING:
    from committee_tasks.core.members import Member
from committee_tasks.core.files import atomic_write_json, from_strict_json
from committee_tasks.core.member_spec import check_stable_key

CARD_VERSION = 1
KINDS = ("member", "ensemble", "cascade")


@dataclass(frozen=True)
class CardMember:
    """One member of a card. ``entry`` is a full zoo entry (a mapping, kept as it is) for a member
    that is not in the task's zoo; None for a zoo name. ``weights`` (sha256) and ``preprocessing``
    (transform key) are the parts of the fingerprint, when known, so a refusal can say which changed."""

    name: str
    fingerprint: str
    temperature: float = 1.0
    weights: str | None = None
    preprocessing: str | None = None
    entry: Mapping[str, Any] | None = None

    @classmethod
    def of(cls, name: str, member: Member | str, temperature: float = 1.0,
           entry: Mapping[str, Any] | None = None) -> CardMember:
        """From a built member (or a described one: `MemberSpec`), or from its fingerprint alone."""
        if not isinstance(member, str):
            return cls(name, member.fingerprint, temperature, member.weights_sha256, member.transform_key, entry)
        return cls(name, member, temperature, entry=entry)

    def __post_init__(self):
        for what in ("name", "fingerprint"):
            if not isinstance(getattr(self, what), str) or not getattr(self, what):
                raise CommitteeError(f"member {self.name!r}: {what} must be a non-empty string, "
                                     f"got {getattr(self, what)!r}")
        object.__setattr__(self, "temperature", check_temperature(self.temperature, f"member {self.name!r}"))
        object.__setattr__(self, "entry", _plain(self.entry, f"entry of member {self.name!r}"))


@dataclass(frozen=True)
class CommitteeCard:
    """A committee to save, load and run (see the module docstring)."""

    task: str
    kind: str  # "member" | "ensemble" | "cascade"
    members: tuple[CardMember, ...]
    thresholds: tuple[float, ...] = ()  # one per stage but the last (cascades)
    confidence: str | None = None  # cascades
    combine: str = "mean"  # "mean" | "last"
    output_dtype: str = "float16"  # member outputs are rounded to it, as the cache stores them
    figures: Mapping[str, Any] = field(default_factory=dict)  # what it was chosen with (free-form)
    dataset: Mapping[str, Any] | None = None  # {"name", "fingerprint"} of the data it was chosen on
    provenance: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        object.__setattr__(self, "members", tuple(self.members))
        object.__setattr__(self, "thresholds", tuple(float(t) for t in self.thresholds))
        if any(np.isnan(self.thresholds)):  # inf is kept: a searched stage that no sample exits at
            raise CommitteeError(f"card thresholds {list(self.thresholds)} hold NaN; every threshold is a number")
        for name in ("figures", "dataset", "provenance"):  # JSON data from here on, so save() cannot fail
            object.__setattr__(self, name, _plain(getattr(self, name), name))
        for name, value, valid in (("kind", self.kind, KINDS), ("combine", self.combine, ("mean", "last")),
                                   ("output_dtype", self.output_dtype, OUTPUT_DTYPE_NAMES)):
            if value not in valid:
                raise CommitteeError(f"card {name} {value!r} is not one of {', '.join(map(repr, valid))}")
        self.committee()  # member count, thresholds and confidence must make a committee

    # ---- the committee -------------------------------------------------------------------
    @property
    def member_names(self) -> list[str]:
        return [m.name for m in self.members]

    @property
    def temperatures(self) -> dict[str, float]:
        return {m.name: m.temperature for m in self.members}

    @property
    def name(self) -> str:
        return self.committee().name

    @property
    def qualified_name(self) -> str:
        """The name with what it leaves out and the card runs with: ``cascade(a>b)@0.9 [margin,
        combine last, tempered]`` for a non-default confidence, combine rule or temperatures (a
        ``margin`` card and a ``max_prob`` one of the same members and thresholds are two committees;
        their files must not overwrite each other)."""
        qualifiers = []
        if self.kind == "cascade" and self.confidence != DEFAULT_CONFIDENCE:
            qualifiers.append(str(self.confidence))
        if self.combine != "mean":
            qualifiers.append(f"combine {self.combine}")
        if any(t != 1.0 for t in self.temperatures.values()):
            qualifiers.append("tempered")
        return self.name + (f" [{', '.join(qualifiers)}]" if qualifiers else "")

    def committee(self) -> Cascade | Ensemble | Single:
        """The `Cascade`, `Ensemble` or `Single` this card describes."""
        names = self.member_names
        if self.kind == "cascade":
            if not isinstance(self.confidence, str):
                raise CommitteeError(f"a card names its cascade's confidence, one of {confidence_names()}; got "
                                     f"{self.confidence!r} (a custom confidence function cannot be saved in a card)")
            return Cascade(names, list(self.thresholds), self.confidence, self.combine)
        if self.thresholds or self.confidence is not None or self.combine != "mean":
            raise CommitteeError(f"a card of kind {self.kind!r} takes no thresholds or confidence and combines by "
                                 f"'mean'; got thresholds {list(self.thresholds)}, confidence {self.confidence!r}, "
                                 f"combine {self.combine!r}")
        if self.kind == "ensemble":
            return Ensemble(names)
        if len(names) != 1:
            raise CommitteeError(f"a card of kind 'member' has exactly one member, got {names}")
        return Single(names[0])

    @classmethod
    def from_committee(cls, committee: Cascade | Ensemble | Single, task_name: str,
                       members: Mapping[str, Member | str], temperatures: Mapping[str, float] | None = None,
                       figures: Mapping[str, Any] | None = None, *, output_dtype: str = "float16",
                       entries: Mapping[str, Mapping[str, Any]] | None = None,
                       dataset: Mapping[str, Any] | None = None,
                       provenance: Mapping[str, Any] | None = None) -> CommitteeCard:
        """A card of ``committee``; ``members`` maps each member name to its built `Member` or its
        fingerprint. ``entries``: full zoo entries of members that are not in the task's zoo.
        ``provenance`` defaults to this run's (`committee_tasks.core.provenance.provenance`)."""
        missing = [n for n in committee.members if n not in members]
        if missing:
            raise CommitteeError(f"no member or fingerprint given for {missing} of {committee.name}; "
                                 f"given: {sorted(members)}")
        temperatures, entries = temperatures or {}, entries or {}
        card_members = tuple(CardMember.of(n, members[n], temperatures.get(n, 1.0), entries.get(n))
                             for n in committee.members)
        fingerprints = {"dataset": dict(dataset) if dataset else None,
                        "members": {m.name: m.fingerprint for m in card_members}}
        is_cascade = isinstance(committee, Cascade)
        return cls(task_name, committee.kind, card_members,
                   committee.thresholds if is_cascade else (), committee.confidence if is_cascade else None,
                   committee.combine if is_cascade else "mean", output_dtype, figures or {}, dataset,
                   provenance if provenance is not None else current_provenance(fingerprints=fingerprints))

    # ---- the file ------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {"card_version": CARD_VERSION, **dataclasses.asdict(self)}

    def save(self, path: str | Path) -> Path:
        """Write the card as JSON (atomically: a crash leaves the old file or the new one)."""
        path = Path(path)
        for member in self.members:  # a saved card is loaded by another session
            if member.preprocessing:
                check_stable_key(member.name, member.preprocessing, "a card loaded in another session")
        atomic_write_json(path, self.to_dict(), strict=True)
        return path

    @classmethod
    def load(cls, path: str | Path) -> CommitteeCard:
        path = Path(path)
        try:
            data = from_strict_json(json.loads(path.read_text()))
        except FileNotFoundError:
            raise CommitteeError(f"committee card {path} not found; write one with CommitteeCard.save") from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            raise CommitteeError(f"committee card {path} is not readable JSON: {err}") from err
        return cls.from_dict(data, str(path))

    @classmethod
    def from_dict(cls, data: Any, source: str = "committee card") -> CommitteeCard:
        """A card from its JSON form; errors name the field and ``source``."""
        if not isinstance(data, Mapping):
            raise CommitteeError(f"{source}: a committee card is a JSON object, got {type(data).__name__}")
        version = data.get("card_version")
        if version is None and "members" not in data:  # another JSON file: a search or eval report
            kind = " (a report of tools/eval.py or tools/search.py)" if "provenance" in data else ""
            raise CommitteeError(f"{source} is not a committee card{kind}: it has no card_version or members; cards "
                                 "are written by --cards DIR (eval and search) or Pool.card(...).save(path)")
        if version != CARD_VERSION:
            raise CommitteeError(f"{source}: card_version {version!r}, but this committee-tasks reads card_version "
                                 f"{CARD_VERSION}; write the card again with this version, or load it with the "
                                 "version that wrote it")
        fields = _check_fields(cls, {k: v for k, v in data.items() if k != "card_version"}, source)
        if not isinstance(fields["members"], (list, tuple)):
            raise CommitteeError(f"{source}: field 'members' must be a list of member records")
        fields["members"] = tuple(CardMember(**_check_fields(CardMember, m, f"{source}: member {i}"))
                                  for i, m in enumerate(fields["members"]))
        _import_task(fields.get("task"))
        try:
            return cls(**fields)
        except (CommitteeError, TypeError, ValueError) as err:
            raise CommitteeError(f"{source}: {err}") from err


def _check_fields(cls: type, data: Any, source: str) -> dict[str, Any]:
    """``data``'s fields if they are exactly ``cls``'s (a file spells out every one), else an error naming them."""
    if not isinstance(data, Mapping):
        raise CommitteeError(f"{source}: expected a JSON object, got {type(data).__name__}")
    known = [f.name for f in dataclasses.fields(cls)]
    extra = sorted(set(data) - set(known))
    if extra:
        raise CommitteeError(f"{source}: unknown field(s) {extra}; valid fields: {known}")
    missing = [n for n in known if n not in data]
    if missing:
        raise CommitteeError(f"{source}: missing field(s) {missing}")
    return dict(data)


def _import_task(name: Any) -> None:
    """Import the plugin of the card's task, which registers its own confidences (a card of a
    plugin's confidence, loaded in a fresh process, was refused as naming an unknown one); a task
    that cannot be imported is said where the card's members are built."""
    from committee_tasks.core.registry import get_task

    if isinstance(name, str):
        try:
            get_task(name)
        except CommitteeError:
            pass


def _plain(value: Any, what: str) -> Any:
    """``value`` as plain JSON types (numpy scalars and arrays become numbers and lists)."""
    if value is None:
        return None

    def convert(obj: Any) -> Any:
        if isinstance(obj, (np.generic, np.ndarray)):
            return obj.tolist()
        raise TypeError(f"{type(obj).__name__} is not JSON data")

    try:
        return json.loads(json.dumps(value, default=convert))
    except (TypeError, ValueError) as err:
        raise CommitteeError(f"the card's {what} must be JSON data (numbers, strings, lists, dicts): {err}") from err


def card_filename(name: str) -> str:
    """A committee's name as a file name: ``cascade(a>b)@0.9`` -> ``cascade_a-b_0.9.json``; a
    qualified name ``cascade(a>b)@0.9 [margin, tempered]`` -> ``cascade_a-b_0.9_margin_tempered.json``."""
    out = name.replace(" [", "_").replace("]", "").replace(", ", "_").replace(" ", "_")
    out = out.replace(">", "-").replace("+", "-").replace("(", "_").replace(")", "").replace("@", "_")
    return "".join(c if c.isalnum() or c in "-_.," else "_" for c in out) + ".json"


def save_cards(cards: Mapping[str, CommitteeCard], folder: str | Path) -> list[Path]:
    """Each card in ``folder`` as ``<qualified name>.json`` (see `CommitteeCard.qualified_name` and
    `card_filename`); returns the paths."""
    paths = {}
    for key, card in cards.items():
        path = Path(folder) / card_filename(card.qualified_name)
        if path in paths and paths[path][1] != card:
            raise CommitteeError(f"cards {paths[path][0]!r} and {key!r} differ but would both be written to {path}")
        paths[path] = (key, card)
    return [card.save(path) for path, (_, card) in paths.items()]
