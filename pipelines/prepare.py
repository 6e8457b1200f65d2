"""Stage ``prepare``: ingest the data source chosen in params.yaml into ``data/prepared``.

Output layout::

    data/prepared/records.jsonl     every rated narrative, image paths relative to data/prepared
    data/prepared/rejected.jsonl    rows that could not be used, with file, line, field and reason
    data/prepared/manifest.json     sources, counts and a content fingerprint
    data/prepared/<source>/         the source's own files (world, images, batches, shift truth)
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import sys
from dataclasses import replace
from pathlib import Path

from dermeval.formats.common import iter_jsonl, read_rows, write_json, write_jsonl
from dermeval.formats.records import load_records
from dermeval.images import resolve_under
from dermeval.params import PrepareParams, load_params
from dermeval.schema import FEEDBACK_SOURCE


def _rated_rows(folder: Path, source: str) -> list[dict]:
    rows = []
    for _, obj in iter_jsonl(folder / "ratings.jsonl"):
        rows.append({**obj, "image": f"{source}/{obj['image']}", "source": source})
    return rows


def _copied_records(path: Path, image_root: Path, out: Path, source: str, prefix: str) -> tuple[list[dict], list[dict]]:
    """DermEval records from ``path`` as rows of ``source``, each image copied to ``out/prefix/`` (the
    prepared dataset holds its own images); also the rejected rows."""
    loaded = load_records(path, image_root=image_root)
    if loaded.source_errors:
        raise SystemExit(f"prepare: {loaded.source_errors[0]}")
    rows = []
    for rec in loaded.records:
        row = {**rec.to_json(), "source": source}
        if rec.image:
            target = out / prefix / rec.image
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(resolve_under(image_root, rec.image), target)
            row["image"] = f"{prefix}/{rec.image}"
        rows.append(row)
    return rows, [e.to_dict() for e in loaded.errors]


def _user_rows(p: PrepareParams, out: Path) -> tuple[list[dict], list[dict]]:
    image_root = Path(p.user_image_root) if p.user_image_root else Path(p.user_records).parent
    return _copied_records(Path(p.user_records), image_root, out, "user", "user/images")


def _feedback_rows(p: PrepareParams, out: Path) -> tuple[list[dict], list[dict]]:
    """Expert-rated narratives (`dermeval review export`), whatever the main source: the ``feedback`` source."""
    path = Path(p.feedback_records) if p.feedback_records else None
    if path is None or not path.is_file() or path.stat().st_size == 0:
        return [], []
    return _copied_records(path, path.parent, out, FEEDBACK_SOURCE, "feedback")


def resolve_source(p: PrepareParams) -> tuple[str, str]:
    """The source to build and why: ``auto`` means DermSynth plus DermBench when the release is reachable."""
    reachable = Path(p.dermbench_root, "data/manifest/dermbench_test.jsonl").is_file()
    if p.source != "auto":
        return p.source, f"prepare.source is {p.source!r}"
    if reachable:
        return "both", f"DermBench release found at {p.dermbench_root}: DermSynth plus real expert text"
    return "dermsynth", (f"no DermBench release at {p.dermbench_root!r}: DermSynth alone (simulated text only; "
                         "transfer to real expert text is not measured)")


def prepare(p: PrepareParams, out: Path) -> dict:
    """Build the normalised dataset for ``p.source`` under ``out`` (replacing what was there)."""
    source, why = resolve_source(p)
    p = replace(p, source=source)
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    rows: list[dict] = []
    rejected: list[dict] = []
    sources = {}
    if p.source in ("dermsynth", "both"):
        from dermeval.synth.world import WorldConfig, generate_world

        cfg = WorldConfig(cases=p.cases, seed=p.seed, weeks=p.weeks, batch_cases=p.batch_cases)
        sources["dermsynth"] = generate_world(out / "dermsynth", cfg)
        rows += _rated_rows(out / "dermsynth", "dermsynth")
    if p.source in ("dermbench", "both"):
        from dermeval.synth.realtext import build_dermbench_dataset

        if not Path(p.dermbench_root, "data/manifest/dermbench_test.jsonl").is_file():
            raise SystemExit(f"prepare: no DermBench release at {p.dermbench_root!r} (set prepare.dermbench_root)")
        sources["dermbench"] = build_dermbench_dataset(p.dermbench_root, out / "dermbench", seed=p.seed,
                                                       dermnet_root=p.dermnet_root, limit=p.dermbench_limit)
        rows += _rated_rows(out / "dermbench", "dermbench")
        rejected += read_rows(out / "dermbench" / "rejected.jsonl")
    if p.source == "user":
        user, rejected = _user_rows(p, out)
        rows += user
    feedback, feedback_rejected = _feedback_rows(p, out)
    rows += feedback
    rejected += feedback_rejected
    write_jsonl(out / "records.jsonl", rows)
    write_jsonl(out / "rejected.jsonl", rejected)
    digest = hashlib.sha256((out / "records.jsonl").read_bytes()).hexdigest()
    manifest = {"source": p.source, "source_reason": why, "real_text": "dermbench" in sources,
                "simulated_ratings": p.source != "user", "records": len(rows),
                "rejected": len(rejected), "fingerprint": digest,
                "sources": {k: v.get("counts", {}) for k, v in sources.items()},
                "feedback": {"records": len(feedback), "ratings": sum(len(r.get("raters") or {}) for r in feedback),
                             "batches": sorted({str((r.get("feedback") or {}).get("batch")) for r in feedback})}}
    write_json(out / "manifest.json", manifest)
    return manifest


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", default="params.yaml", help="params file (section 'prepare')")
    ap.add_argument("--out", required=True, help="output folder (data.prepared)")
    args = ap.parse_args(argv)
    manifest = prepare(load_params(args.params).prepare, Path(args.out))
    print(f"prepare: {manifest['records']} records, {manifest['rejected']} rejected "
          f"(source={manifest['source']}: {manifest['source_reason']}; "
          f"fingerprint {manifest['fingerprint'][:12]})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
