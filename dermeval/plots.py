"""``dvc plots show`` that renders offline: Vega from npm, inlined into the page.

DVC's own page loads Vega, Vega-Lite and Vega-Embed from a CDN, so it stays blank on a
machine without internet. :func:`offline_template` builds an HTML template holding the
three libraries (the versions DVC's page asks for) inline and no ``{scripts}`` placeholder,
so DVC adds no CDN tag; :func:`render` installs the libraries once with npm (from the npm
registry, into a cache folder) and runs ``dvc plots show`` with that template.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

# The versions dvc-render's page loads from its CDN: the specs DVC writes are made for them.
LIBRARIES = {"vega": "5.20.2", "vega-lite": "5.2.0", "vega-embed": "6.18.2"}
BUILDS = {"vega": "vega/build/vega.min.js", "vega-lite": "vega-lite/build/vega-lite.min.js",
          "vega-embed": "vega-embed/build/vega-embed.min.js"}


class PlotsError(RuntimeError):
    """The offline page cannot be built (no npm, an install that failed, DVC refused)."""


def install_libraries(folder: Path) -> Path:
    """``node_modules`` under ``folder`` with the three libraries (installed with npm when missing)."""
    modules = folder / "node_modules"
    if all((modules / path).is_file() for path in BUILDS.values()):
        return modules
    npm = shutil.which("npm")
    if npm is None:
        raise PlotsError("npm is not installed (apt-get install npm): it fetches Vega for the offline plots page")
    folder.mkdir(parents=True, exist_ok=True)
    # --legacy-peer-deps: the three pinned releases predate each other's peer ranges; DVC loads exactly these.
    done = subprocess.run([npm, "install", "--no-audit", "--no-fund", "--no-save", "--legacy-peer-deps",
                           *[f"{name}@{version}" for name, version in LIBRARIES.items()]],
                          cwd=folder, capture_output=True, text=True)
    missing = [path for path in BUILDS.values() if not (modules / path).is_file()]
    if done.returncode != 0 or missing:
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        raise PlotsError(f"npm install of {', '.join(LIBRARIES)} failed in {folder}: {tail[0]}")
    return modules


def offline_template(modules: Path) -> str:
    """An HTML template for ``dvc plots show --html-template`` with Vega inlined (no network at view time)."""
    scripts = "\n".join(f"<script>\n{(modules / BUILDS[name]).read_text('utf-8')}\n</script>" for name in BUILDS)
    return ("<!DOCTYPE html>\n<html>\n<head>\n<meta charset=\"utf-8\">\n<title>DermEval Ops: DVC plots</title>\n"
            f"{scripts}\n<style>table {{ border-spacing: 15px; }}</style>\n</head>\n<body>\n{{plot_divs}}\n"
            "</body>\n</html>\n")


def render(out: Path, cache: Path, repo: Path | None = None) -> Path:
    """Write ``out``/index.html from the project's ``dvc plots``, viewable offline; returns the page."""
    modules = install_libraries(cache)
    template = cache / "plots-template.html"
    template.write_text(offline_template(modules), "utf-8")
    dvc = shutil.which("dvc")
    if dvc is None:
        raise PlotsError("dvc is not on PATH (activate the project's environment)")
    done = subprocess.run([dvc, "plots", "show", "--html-template", str(template.resolve()), "-o", str(out)],
                          cwd=repo, capture_output=True, text=True)
    page = out / "index.html"
    if done.returncode != 0 or not page.is_file():
        raise PlotsError(f"dvc plots show failed: {(done.stderr or done.stdout).strip()[-400:]}")
    return page
