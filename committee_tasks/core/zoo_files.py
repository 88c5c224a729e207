"""Zoo files: the models users describe in JSON or YAML (``--zoo FILE``), one format for every task.

::

    models:
      - name: my_resnet                      # required
        builder: my_package.models:resnet    # any importable callable returning an nn.Module ...
        kwargs: {depth: 18, num_classes: 10}
        # base: resnet18                     # ... or a model of the task's zoo to start from
        weights: {path: ckpt/best.pth, key: model, strip_prefix: "module.", sha256: ...}
        preprocessing: {resize: 36, crop: 32, mean: [0.49, 0.48, 0.45], std: [0.25, 0.24, 0.26]}
        outputs: {type: logits, class_map: [0, 1, 2]}
        num_classes: 3
        dataset: my-data
        metrics: {top-1: 91.2}

Fields every task reads are defined here; each task adds its own (``preprocessing`` for images,
``recipe`` for videos, ``config`` for mmseg models) and builds the `ZooEntry`. **A zoo file is
code**: its builders are imported and called (modules next to the file are importable), so load
only zoo files you trust. Listing models imports nothing; errors name the file, model and field.
"""
from __future__ import annotations

import dataclasses
import difflib
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

from committee_tasks.core.errors import CommitteeError
from committee_tasks.core.files import resolve_in
from committee_tasks.core.lazy_call import LazyCall, lazy_call
from committee_tasks.core.names import check_name
from committee_tasks.core.outputs import OutputSpec, output_spec
from committee_tasks.core.zoo import WeightsSource, ZooEntry

if TYPE_CHECKING:
    import torch

COMMON_FIELDS: dict[str, str] = {
    "name": "the member's name (required)",
    "builder": "'package.module:function' returning the nn.Module (any importable callable)",
    "kwargs": "keyword arguments of the builder (or overriding those of the base model's)",
    "base": "a model of the task's zoo to start from (its builder, preprocessing and weights)",
    "weights": "a path or URL, or {path | url, sha256, key, strip_prefix}",
    "num_classes": "classes the member predicts (default: the class map's length, or the base's)",
    "outputs": "{type: logits | probabilities, class_map: [output channel of each class]}",
    "dataset": "the dataset its published metrics are on",
    "metrics": "published metrics, e.g. {top-1: 76.1}",
    "macs": "published multiply-adds per sample (the toolkit counts its own anyway)",
    "params": "published number of parameters",
    "source": "where the model comes from, for reports",
}
WEIGHTS_FIELDS = ("path", "url", "sha256", "key", "strip_prefix")
STATE_DICT_READER = "committee_tasks.core.checkpoints:read_state_dict"


@dataclass(frozen=True)
class ImportedBuilder:
    """``target(**kwargs)``, ``target`` being ``"module:attribute"``, imported when called with
    the zoo file's folder importable; errors name the entry and the field."""

    target: str
    kwargs: tuple[tuple[str, Any], ...] = ()
    folder: str = ""
    where: str = field(default="", compare=False)

    def resolve(self) -> Any:
        if self.folder and self.folder not in sys.path:
            sys.path.append(self.folder)  # modules next to the zoo file import as top-level ones
        try:
            value = LazyCall(self.target).resolve()
        except (ImportError, AttributeError) as err:
            raise CommitteeError(f"{self.where}field 'builder': cannot import {self.target!r} ({type(err).__name__}: "
                                 f"{err}); the module must be installed, on PYTHONPATH or next to the zoo "
                                 "file") from err
        if not callable(value):
            raise CommitteeError(f"{self.where}field 'builder': {self.target!r} is a {type(value).__name__}, not a "
                                 "callable returning an nn.Module")
        return value

    def __call__(self) -> torch.nn.Module:
        import torch

        builder = self.resolve()
        try:
            module = builder(**dict(self.kwargs))
        except TypeError as err:
            raise CommitteeError(f"{self.where}field 'kwargs': {self.target}(**{dict(self.kwargs)}) failed: "
                                 f"{err}") from err
        if not isinstance(module, torch.nn.Module):
            raise CommitteeError(f"{self.where}field 'builder': {self.target} returned a {type(module).__name__}, "
                                 "not an nn.Module")
        return module


@dataclass(frozen=True)
class ZooFileModel:
    """One model of a zoo file: the common fields read and checked, the task's own kept as given."""

    name: str
    file: Path
    item: Mapping[str, Any]  # the model as written (kept in committee cards)
    outputs: OutputSpec | None

    @property
    def where(self) -> str:
        return f"zoo file {self.file}, model {self.name!r}: "

    def error(self, field_name: str, message: str) -> CommitteeError:
        return CommitteeError(f"{self.where}field {field_name!r}: {message}")

    def get(self, field_name: str, default: Any = None) -> Any:
        return self.item.get(field_name, default)

    def path(self, value: str) -> Path:
        """A path written in the file: relative ones are relative to the file's folder."""
        return resolve_in(self.file.parent, value)

    def builder(self, base: ZooEntry | None, known: Mapping[str, Any] | None = None) -> Any:
        """The entry's builder: ``builder`` (importable, or a name in ``known``) with ``kwargs``,
        else the base model's with ``kwargs`` merged into its own."""
        kwargs = self.get("kwargs") or {}
        if not isinstance(kwargs, Mapping):
            raise self.error("kwargs", f"must be an object of keyword arguments, got {kwargs!r}")
        target = self.get("builder")
        if target is None:
            if base is None:
                raise self.error("builder", "missing: give 'builder' (package.module:function) or 'base' (a zoo model)")
            if not kwargs:
                return base.builder
            if not isinstance(base.builder, LazyCall):
                raise self.error("kwargs", f"base {self.get('base')!r} is not built from keyword arguments; give a "
                                 "'builder' instead")
            return lazy_call(base.builder.target, *base.builder.args, **{**dict(base.builder.kwargs), **kwargs})
        if not isinstance(target, str):
            raise self.error("builder", f"must be a string 'package.module:function', got {target!r}")
        if known and target in known:
            return known[target](self, dict(kwargs))
        if ":" not in target:
            extra = f" or one of {sorted(known)}" if known else ""
            raise self.error("builder", f"{target!r} is not 'package.module:function'{extra}")
        return ImportedBuilder(target, tuple(sorted(kwargs.items())), str(self.file.parent.resolve()), self.where)

    def weights(self, base: ZooEntry | None, checkpoint_format: Any = None
                ) -> tuple[WeightsSource | None, Any, dict[str, Any]]:
        """(source, state-dict loader, variant) of ``weights``; the base's when not given.
        ``checkpoint_format``: the task's reader of its usual checkpoints, used when the weights
        name neither a key nor a prefix (None: a plain state dict)."""
        spec = self.get("weights")
        if spec is None:
            return (base.weights, base.state_dict_loader, dict(base.variant)) if base else (None, None, {})
        if isinstance(spec, str):
            spec = {"url": spec} if spec.startswith(("http://", "https://")) else {"path": spec}
        if not isinstance(spec, Mapping):
            raise self.error("weights", f"must be a path, a URL or an object with {list(WEIGHTS_FIELDS)}, got {spec!r}")
        unknown = sorted(set(spec) - set(WEIGHTS_FIELDS))
        if unknown:
            raise self.error("weights", f"unknown field(s) {unknown}; valid: {list(WEIGHTS_FIELDS)}")
        if not (spec.get("path") or spec.get("url")):
            raise self.error("weights", "give a 'path' or a 'url'")
        path = self.path(spec["path"]) if spec.get("path") else None
        file_name = path.name if path else spec["url"].rsplit("/", 1)[-1]
        source = WeightsSource(file_name, spec.get("url"), spec.get("sha256"), path=path)
        key, prefix = spec.get("key"), spec.get("strip_prefix")
        if key is None and prefix is None and checkpoint_format is not None:
            return source, checkpoint_format, {}
        loader = lazy_call(STATE_DICT_READER, key=key, strip_prefix=prefix)
        return source, loader, ({"state_dict_key": key} if key else {})

    def num_classes(self, base: ZooEntry | None) -> int:
        mapped = len(self.outputs.class_map) if self.outputs and self.outputs.class_map else None
        given = self.get("num_classes")
        if given is not None and (not isinstance(given, int) or isinstance(given, bool) or given < 1):
            raise self.error("num_classes", f"must be a positive integer, got {given!r}")
        if given is not None and mapped is not None and given != mapped:
            raise self.error("num_classes", f"{given}, but the class map selects {mapped} channels")
        found = given or mapped or (base.num_classes if base else None)
        if found is None:
            raise self.error("num_classes", "missing: give num_classes (or a class map, or a base model)")
        return found

    def entry(self, task: str, base: ZooEntry | None, preprocessing: Any, input_size: tuple[int, ...],
              known_builders: Mapping[str, Any] | None = None, checkpoint_format: Any = None,
              **overrides: Any) -> ZooEntry:
        """The `ZooEntry` of this model (``known_builders``: see `builder`; ``checkpoint_format``:
        see `weights`); ``overrides``: other `ZooEntry` fields the task sets."""
        weights, loader, variant = self.weights(base, checkpoint_format)
        if self.outputs is not None:
            variant["outputs"] = self.outputs.key()
        built = {k: self.get(k) for k in ("builder", "kwargs") if self.get(k)}
        if built:  # the same weights in another architecture (``pool: max`` for ``avg``) predict otherwise
            variant["builder"] = built
        same_weights = base is not None and self.get("weights") is None
        published = {k: self.get(k, getattr(base, k) if same_weights else None) for k in ("macs", "params")}
        metrics = self.get("metrics", dict(base.metrics) if same_weights else {})
        if not isinstance(metrics, Mapping):
            raise self.error("metrics", f"must be an object like {{\"top-1\": 76.1}}, got {metrics!r}")
        values = dict(name=self.name, task=task, builder=self.builder(base, known_builders), weights=weights,
                      num_classes=self.num_classes(base), input_size=input_size, preprocessing=preprocessing,
                      dataset=str(self.get("dataset", base.dataset if base else "?")), metrics=dict(metrics),
                      state_dict_loader=loader, source=str(self.get("source", f"zoo file {self.file}")),
                      variant=variant, outputs=self.outputs, **published)
        values.update(overrides)
        return dataclasses.replace(base, **values) if base is not None else ZooEntry(**values)


def _document(path: Path) -> Any:
    text = path.read_text()
    if path.suffix.lower() in (".yaml", ".yml"):
        import yaml

        return yaml.safe_load(text)
    return json.loads(text)


def read_zoo_file(path: str | Path, task_fields: Mapping[str, str], output_fields: tuple[str, ...] = ()
                  ) -> dict[str, ZooFileModel]:
    """Every model of the zoo file at ``path`` (JSON, or YAML by its suffix), by name, with
    unknown fields refused: valid ones are `COMMON_FIELDS` and the task's ``task_fields``."""
    path = Path(path)
    example = '{"models": [{"name": ..., "builder": "package.module:function", "weights": ...}]}'
    try:
        items = _document(path)["models"]
        if not isinstance(items, list):
            raise TypeError(f"'models' is a {type(items).__name__}, not a list")
    except Exception as err:  # unreadable, not JSON/YAML, no "models" list
        raise CommitteeError(f"cannot read zoo file {path} ({type(err).__name__}: {err}); expected {example}") from err
    valid = {**COMMON_FIELDS, **task_fields}
    models: dict[str, ZooFileModel] = {}
    for number, item in enumerate(items, 1):
        name = item.get("name") if isinstance(item, dict) else None
        if not isinstance(name, str) or not name.strip():
            raise CommitteeError(f"zoo file {path}, model #{number}: needs a 'name' (a non-empty string); got {item!r}")
        check_name("model", name, f"zoo file {path}, model #{number}")  # it names cache folders and files
        where = f"zoo file {path}, model {name!r}: "
        if name in models:
            raise CommitteeError(f"{where}the name is used twice in the file")
        for key in item:
            if key not in valid:
                close = difflib.get_close_matches(key, valid, n=3)
                hint = f"did you mean {', '.join(map(repr, close))}? " if close else ""
                raise CommitteeError(f"{where}unknown field {key!r}; {hint}valid fields: {', '.join(valid)}")
        outputs = output_spec(item["outputs"], where, output_fields) if item.get("outputs") is not None else None
        models[name] = ZooFileModel(name, path, item, outputs)
    return models
