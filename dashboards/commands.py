"""``dermeval dashboard``: serve the Streamlit dashboard.

Mounted on the ``dermeval`` command line through the ``dermeval.commands`` entry point, so the
core package never imports the dashboard.
"""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from dermeval.commands.common import err


def dashboard(
    port: int = typer.Option(8501, "--port", help="Port to serve on."),
    address: str = typer.Option("127.0.0.1", "--address", help="Address to bind (0.0.0.0 to share)."),
    project: Path = typer.Option(Path("."), "--project", help="Project folder (params.yaml, reports/, data/)."),
) -> None:
    """Start the Streamlit dashboard (read-only) over the store, the registry and the reports."""
    import os
    import subprocess

    import dashboards

    app_file = Path(dashboards.__file__).with_name("app.py")
    env = {**os.environ, "DERMEVAL_PROJECT": str(project.resolve())}
    cmd = [sys.executable, "-m", "streamlit", "run", str(app_file), "--server.port", str(port),
           "--server.address", address, "--server.headless", "true", "--browser.gatherUsageStats", "false"]
    err(f"dashboard on http://{address}:{port} (project {project.resolve()})")
    import signal

    server = subprocess.Popen(cmd, env=env)

    def stop(signum, _frame) -> None:  # SIGTERM (a service manager, `kill`): the server stops with us
        server.send_signal(signum)

    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, stop)
    try:
        code = server.wait()
    except KeyboardInterrupt:  # Ctrl-C reaches both; wait for the server to finish shutting down
        code = server.wait()
    raise typer.Exit(code)


def register(app: typer.Typer) -> None:
    app.command()(dashboard)
