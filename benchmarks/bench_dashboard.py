"""Benchmark the dashboard's first render of every page over a store with 1 million score rows.

Usage: python benchmarks/bench_dashboard.py [--rows 1000000] [--out results/dashboard.json]
Builds the synthetic store of bench_store.py inside a temporary project folder (with the
repository's params.yaml and pipeline reports), then renders each page with Streamlit's
AppTest after clearing every cache, so each figure is a cold first render (script run,
queries, charts). The very first run in a fresh process, which also imports the libraries,
is reported separately. Target: <= 3 s per page.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.bench_store import build  # noqa: E402

PAGES = ["Overview", "MLLM trustworthiness", "Drift", "Registry", "Case explorer", "Evaluator quality"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "dashboard.json"))
    args = ap.parse_args()
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    proj = Path(tempfile.mkdtemp(prefix="dermeval-dash-"))
    shutil.copyfile(REPO / "params.yaml", proj / "params.yaml")
    shutil.copytree(REPO / "reports", proj / "reports", ignore=shutil.ignore_patterns("tmp", "monitor"))
    t = time.perf_counter()
    build(f"sqlite:///{proj}/data/store/dermeval.db", args.rows)
    build_s = time.perf_counter() - t
    os.environ["DERMEVAL_PROJECT"] = str(proj)
    os.environ.pop("DERMEVAL_STORE_URL", None)
    # The first script run in a process also pays for importing the app's libraries; recorded apart.
    t = time.perf_counter()
    AppTest.from_file(str(REPO / "dashboards" / "app.py"), default_timeout=120).run()
    process_start_s = time.perf_counter() - t
    timings = {}
    for page in PAGES:
        st.cache_data.clear()
        st.cache_resource.clear()
        at = AppTest.from_file(str(REPO / "dashboards" / "app.py"), default_timeout=120)
        t = time.perf_counter()
        at.run()
        if page != "Overview":
            at.sidebar.radio(key="page").set_value(page)
            st.cache_data.clear()
            st.cache_resource.clear()
            t = time.perf_counter()
            at.run()
        timings[page] = {"first_render_s": round(time.perf_counter() - t, 2), "exception": bool(at.exception)}
    worst = max(v["first_render_s"] for v in timings.values())
    result = {"benchmark": "dashboard first render per page (AppTest, caches cleared), synthetic store",
              "score_rows": args.rows, "build_s": round(build_s, 1),
              "first_run_in_new_process_s": round(process_start_s, 2), "pages": timings, "target_s": 3.0,
              "worst_s": worst, "met": worst <= 3.0, "cpus": os.cpu_count(), "python": platform.python_version()}
    print(json.dumps(result, indent=2))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    shutil.rmtree(proj, ignore_errors=True)


if __name__ == "__main__":
    main()
