"""Models users describe in a ``--zoo`` JSON file (``{"models": [{...}, ...]}``), and the task
mixin that adds them to a task's built-in models.

Each task reads its own fields (an mmseg config, a pytorchvideo builder and recipe ...); what is
shared is the file's frame, the weights fields and the errors, which name the file and the model.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, Generic, Mapping, TypeVar

from committee_tasks.core.errors import CommitteeError
from committee_tasks.core.zoo import WeightsSource, ZooEntry

M = TypeVar("M")  # a task's model: anything with an ``entry`` (its `ZooEntry`)


def read_zoo_file(path: str | Path, example: str, read_model: Callable[[Mapping[str, Any]], M]) -> dict[str, M]:
    """Every model of the zoo file at ``path``, by name, each read by ``read_model`` from its JSON
    object. ``example`` shows one such object in the error for a file that is not a zoo file; a
    model ``read_model`` rejects (KeyError, TypeError, ValueError) is an error naming it."""
    path = Path(path)
    try:
        items = json.loads(path.read_text())["models"]
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise CommitteeError(f"cannot read zoo file {path} ({type(err).__name__}: {err}); expected "
                             f'{{"models": [{example}]}}') from err
    models = {}
    for item in items:
        try:
            models[item["name"]] = read_model(item)
        except (KeyError, TypeError, ValueError) as err:
            name = item.get("name") if isinstance(item, dict) else None
            raise CommitteeError(f"zoo file {path}, model {name!r}: {type(err).__name__}: {err}") from err
    return models


def weights_from_spec(item: Mapping[str, Any]) -> WeightsSource | None:
    """A zoo file model's weights: the file ``weights`` (else the last part of ``url``), found on
    disk or downloaded from ``url``, checked against ``sha256`` when given; None: random init."""
    if not (item.get("weights") or item.get("url")):
        return None
    return WeightsSource(item.get("weights") or item["url"].rsplit("/", 1)[-1], item.get("url"), item.get("sha256"))


class ZooFiles(Generic[M]):
    """Mixin (before `Task`) of a task whose models are built-in ones plus those users add from
    ``--zoo`` files: it serves ``models()``, ``zoo()`` and ``add_zoo_file()``.

    Subclasses set ``builtin_models`` and ``models_from_file`` to functions (``staticmethod``)
    giving {name: model}, each model with an ``entry``; a file's model replaces a built-in one
    of the same name."""

    builtin_models: Callable[[], Mapping[str, M]]
    models_from_file: Callable[[str | Path], Mapping[str, M]]

    def __init__(self) -> None:
        self._file_models: dict[str, M] = {}

    def models(self) -> dict[str, M]:
        return {**self.builtin_models(), **self._file_models}

    def zoo(self) -> Mapping[str, ZooEntry]:
        return {name: model.entry for name, model in self.models().items()}

    def add_zoo_file(self, path: str | Path) -> None:
        self._file_models.update(self.models_from_file(path))
