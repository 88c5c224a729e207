"""The layout: built-in plugins under a name of the project's own, layers that import downwards
only, public names that resolve, and a README map listing every module."""
from __future__ import annotations

import ast
import importlib
import subprocess
import sys

import pytest

from tests.conftest import REPO

PACKAGE = REPO / "committee_tasks"
# Each layer may import itself and the layers after it in this list, never those before it.
LAYERS = ["cli", "api", "reporting", "search", "engine", "committees", "core"]


def test_a_users_own_tasks_py_does_not_shadow_the_built_in_plugins(tmp_path):
    """A folder holding a user's own tasks.py (run from there, so it comes first on sys.path)."""
    (tmp_path / "tasks.py").write_text("raise SystemExit('the user tasks.py was imported')\n")
    code = ("from committee_tasks import get_task; task = get_task('classification'); "
            "print(type(task).__module__, task.list_datasets())")
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("committee_tasks_builtin.classification ")


def _layer(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if parts[0] == "committee_tasks" and len(parts) > 1 and parts[1] in LAYERS else None


def _imports(path) -> set[str]:
    tree = ast.parse(path.read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


@pytest.mark.parametrize("layer", LAYERS)
def test_layers_import_downwards_only(layer):
    allowed = set(LAYERS[LAYERS.index(layer):])
    wrong = []
    for path in sorted((PACKAGE / layer).glob("*.py")):
        for module in _imports(path):
            target = _layer(module)
            if target is not None and target not in allowed:
                wrong.append(f"{path.relative_to(REPO)} imports {module}")
    assert not wrong, f"{layer} may import only {sorted(allowed)}:\n" + "\n".join(wrong)


def test_plugins_and_tools_use_only_public_core_names():
    """Built-in plugins import from the core as third-party ones would: no private names."""
    private = []
    for path in sorted((REPO / "tasks").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("committee_tasks"):
                private += [f"{path.relative_to(REPO)}: {a.name}" for a in node.names if a.name.startswith("_")]
    assert not private


@pytest.mark.parametrize("package", ["committee_tasks", "committee_tasks.api", *(f"committee_tasks.{x}" for x in LAYERS
                                                                               if x not in ("cli", "api"))])
def test_every_public_name_resolves(package):
    module = importlib.import_module(package)
    for name in module.__all__:
        assert getattr(module, name) is not None, f"{package}.{name}"


def test_readme_map_lists_every_module():
    readme = (REPO / "README.md").read_text()
    modules = sorted(str(p.relative_to(REPO)) for p in PACKAGE.rglob("*.py") if p.name != "__init__.py")
    modules += sorted(str(p.relative_to(REPO)) for p in (REPO / "tasks").rglob("*.py") if p.name != "__init__.py")
    missing = [m for m in modules if f"`{m}`" not in readme]
    assert not missing, f"README's map misses {missing}"
