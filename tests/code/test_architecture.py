"""The layering rules a reader relies on, checked on the source (imports read with ``ast``, nothing executed).

- The core package (``dermeval/``) imports no top-level package (``registry``, ``pipelines``, ``dashboards``).
- The evaluator (``dermeval/model``, ``dermeval/judge``, ``dermeval/encoders``) never imports the
  simulator (``dermeval/synth``): it speaks the clinical problem taxonomy (``dermeval/problems.py``).
- No module is longer than about 300 lines unless its docstring says why (``Longer than 300 lines:``).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CORE = REPO / "dermeval"
LIMIT, SLACK = 300, 20  # "about 300": a few lines over is not worth a split


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text("utf-8"))
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
            out |= {f"{node.module}.{a.name}" for a in node.names}
    return out


def _modules(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*.py") if "migrations" not in p.parts)


def _hits(paths: list[Path], banned: tuple[str, ...]) -> list[str]:
    return [f"{p.name} imports {m}" for p in paths for m in sorted(_imports(p))
            if any(m == b or m.startswith(b + ".") for b in banned)]


def test_the_core_imports_no_top_level_package():
    assert _hits(_modules(CORE), ("registry", "pipelines", "dashboards")) == []


@pytest.mark.parametrize("part", ["model", "judge", "encoders"])
def test_the_evaluator_never_imports_the_simulator(part):
    assert _hits(_modules(CORE / part), ("dermeval.synth",)) == []


def test_the_rule_catches_an_import(tmp_path):
    """The checks above can fail: a module with a banned import is reported."""
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from registry.gate import decide\n    import dermeval.synth.defects\n")
    assert _hits([bad], ("registry",)) and _hits([bad], ("dermeval.synth",)) and not _hits([bad], ("pipelines",))


def test_no_long_module_without_a_reason():
    long = []
    for p in [m for root in ("dermeval", "pipelines", "registry", "dashboards") for m in _modules(REPO / root)]:
        n = len(p.read_text("utf-8").splitlines())
        doc = ast.get_docstring(ast.parse(p.read_text("utf-8"))) or ""
        if n > LIMIT + SLACK and "Longer than 300 lines:" not in doc:
            long.append(f"{p.relative_to(REPO)}: {n} lines")
    assert long == []
