"""The ``dermeval`` command line: a thin face over the command modules. JSONL in, JSONL out; summaries go to stderr.

The core's command groups live in :mod:`dermeval.commands`, one module each. Groups that belong
to the top-level packages (``dermeval registry``, ``dermeval dashboard``) are mounted through the
``dermeval.commands`` entry point group (see ``pyproject.toml``), so the core never imports them.
"""

from __future__ import annotations

import sys
from importlib.metadata import entry_points

import typer

from dermeval.commands import alerts, data, judging, monitoring, plots, review, scoring, store

app = typer.Typer(help="DermEval Ops: train, gate, serve and monitor dermatology narrative evaluators.",
                  no_args_is_help=True, add_completion=False)

for module in (data, scoring, judging, store, monitoring, alerts, review, plots):
    module.register(app)
for ep in sorted(entry_points(group="dermeval.commands"), key=lambda e: e.name):
    ep.load()(app)


def main() -> None:  # pragma: no cover - thin wrapper for `python -m dermeval`
    app(prog_name="dermeval")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
