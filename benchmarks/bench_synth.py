"""Benchmark DermSynth generation: images per second and world generation time.

Usage: python benchmarks/bench_synth.py [--cases N] [--out results.json]
Prints and saves JSON figures (results/ by default).
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import tempfile
import time
from pathlib import Path

from dermeval.synth.catalogue import default_catalogue
from dermeval.synth.render import png_bytes, render_condition
from dermeval.synth.world import WorldConfig, generate_world


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", type=int, default=1000)
    ap.add_argument("--weeks", type=int, default=8)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "synth.json"))
    args = ap.parse_args()
    cat = default_catalogue()
    t = time.perf_counter()
    n = 0
    for k in range(3):
        for i, c in enumerate(cat.conditions):
            png_bytes(render_condition(c, 1 + (i + k) % 6, i * 7 + k))
            n += 1
    render_s = time.perf_counter() - t
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        manifest = generate_world(tmp, WorldConfig(cases=args.cases, weeks=args.weeks), progress=False)
        world_s = time.perf_counter() - t
        size = sum(p.stat().st_size for p in Path(tmp).rglob("*") if p.is_file())
    result = {
        "benchmark": "dermsynth", "machine": platform.processor() or platform.machine(),
        "images_rendered": n, "images_per_s": round(n / render_s, 1),
        "world": {"cases": args.cases, "weeks": args.weeks, "seconds": round(world_s, 1),
                  "rated_narratives": manifest["counts"]["ratings"], "bytes": size},
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
