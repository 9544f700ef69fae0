"""Each side installs with its own extra alone (README Layout: ``xueliang[gateway]`` has no OpenCV or onnxruntime,
``xueliang[edge]`` no web or database stack): every package a module of ``gateway/`` or ``edge/`` imports is in
pyproject's dependencies or that side's extra, or comes with one of them. ``gateway/photohash.py`` imported numpy,
which only the edge's extra named: a gateway installed as ``xueliang[gateway]`` (deploy/install_services.sh with
``XUELIANG_EXTRAS=gateway``) failed at its first command with ModuleNotFoundError."""

import ast
import importlib.metadata
import re
import sys
import tomllib

import pytest
from packaging.requirements import Requirement

from .conftest import REPO

PROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
OURS = {"xueliang", "gateway", "edge", "models"}


def distribution(requirement: str) -> str:
    return re.split(r"[<>=!~\[ ;]", requirement)[0].lower().replace("_", "-")


def required(extra: str) -> set[str]:
    """The distributions ``xueliang[extra]`` installs: those named, and what they require, all the way down."""
    todo = [distribution(r) for r in PROJECT["dependencies"] + PROJECT["optional-dependencies"][extra]]
    found: set[str] = set()
    while todo:
        if (name := todo.pop()) in found:
            continue
        found.add(name)
        for r in map(Requirement, importlib.metadata.requires(name) or []):
            # the package's own extras are not installed with it, nor what this Python or system does not need
            if r.marker is None or r.marker.evaluate({"extra": ""}):
                todo.append(distribution(r.name))
    return found


def imported(side: str) -> dict[str, str]:
    """The top-level packages a side's modules import (outside the standard library and ours), each with a file."""
    found = {}
    for path in sorted((REPO / side).rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for top in (name.split(".")[0] for name in names):
                if top not in sys.stdlib_module_names and top not in OURS:
                    found.setdefault(top, str(path.relative_to(REPO)))
    return found


@pytest.mark.parametrize("side", ["gateway", "edge"])
def test_every_package_a_side_imports_comes_with_its_extra(side):
    installs = required(side)
    by_module = importlib.metadata.packages_distributions()
    missing = {module: where for module, where in imported(side).items()
               if not {d.lower().replace("_", "-") for d in by_module.get(module, [module])} & installs}
    assert missing == {}
