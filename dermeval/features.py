"""Encoder features keyed by content hash, so nothing is ever encoded twice.

A :class:`FeatureStore` is a small SQLite file mapping ``sha256(content)`` to a float32
vector (one table per encoder). The :class:`Featurizer` turns narratives into sentence
units and images into pixels, looks both up in the store and encodes only what is new.
"""

from __future__ import annotations

import hashlib
import sqlite3
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from dermeval import text as tx
from dermeval.encoders import key_prefix as encoder_key
from dermeval.encoders.image import FEATURE_DIM as IMAGE_DIM
from dermeval.encoders.runtime import check_precision
from dermeval.encoders.text import FEATURE_DIM as TEXT_DIM
from dermeval.encoders.text import chunk_sentence
from dermeval.images import load_rgb

MAX_UNITS = 160  # sentence units per narrative; DermBench's longest has ~90
N_STATS = 4
LENGTH_STATS = 2  # stats[0:2] measure length (log words, units); stats[2:] are flags (empty, <think>)


def sha(data: bytes | str) -> str:
    return hashlib.sha256(data.encode("utf-8") if isinstance(data, str) else data).hexdigest()


def image_key(image: Image.Image) -> str:
    rgb = image.convert("RGB")
    return sha(f"{rgb.size}".encode() + rgb.tobytes())


@dataclass(frozen=True)
class Units:
    """A narrative as the model sees it: sentence units, text statistics, and a truncation note."""

    units: list[str]
    stats: np.ndarray
    truncated_from: int | None = None
    conclusion: int = -1  # index of the unit that states the conclusion, -1 if none
    conclusion_sentence: str = ""  # that sentence as written (bold kept: it often marks the diagnosis)


def narrative_units(narrative: str) -> Units:
    parts = [p for p in tx.sentences(narrative) if not tx.is_marker(p)]
    concl_part = tx.conclusion_index(parts) if parts else None
    units: list[str] = []
    conclusion = -1
    for k, part in enumerate(parts):
        for c in chunk_sentence(part):
            # The model reads content, not layout: bold markers and line breaks inside a
            # sentence are dropped, so a layout-only rewrite gives the same units.
            c = tx.plain(c.replace("<think>", "").replace("</think>", ""))
            if c:
                if k == concl_part and conclusion < 0:
                    conclusion = len(units)
                units.append(c)
    truncated = len(units) if len(units) > MAX_UNITS else None
    if conclusion >= MAX_UNITS:
        conclusion = -1
    sentence = " ".join(parts[concl_part].split()) if conclusion >= 0 and concl_part is not None else ""
    words = len(narrative.split())
    stats = np.array([np.log1p(words) / 7.0, min(len(units), MAX_UNITS) / 40.0, float(words == 0),
                      float(narrative.count("<think>") > 0)], np.float32)
    return Units(units[:MAX_UNITS], stats, truncated, conclusion, sentence)


class FeatureStore:
    """Content-hash -> vector cache in one SQLite file (safe to share between runs)."""

    TABLES = {"image": IMAGE_DIM, "sentence": TEXT_DIM}
    # An in-memory store (no path: a serving process) is emptied past this many vectors per table.
    MEMORY_LIMIT = 50_000

    def __init__(self, path: Path | str | None) -> None:
        self.path = str(path) if path else ":memory:"
        if path:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        # A model server predicts on worker threads: one connection, guarded by a lock.
        self.lock = threading.Lock()
        self.db = sqlite3.connect(self.path, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        for table in self.TABLES:
            self.db.execute(f"CREATE TABLE IF NOT EXISTS {table} (key TEXT PRIMARY KEY, vec BLOB NOT NULL)")

    def get(self, table: str, keys: Sequence[str]) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        uniq = list(dict.fromkeys(keys))
        for start in range(0, len(uniq), 500):
            chunk = uniq[start:start + 500]
            with self.lock:
                rows = self.db.execute(f"SELECT key, vec FROM {table} WHERE key IN ({','.join('?' * len(chunk))})",
                                       chunk).fetchall()
            out.update({k: np.frombuffer(v, np.float32) for k, v in rows})
        return out

    def put(self, table: str, items: dict[str, np.ndarray]) -> None:
        with self.lock, self.db:
            if self.path == ":memory:" and self._count(table) + len(items) > self.MEMORY_LIMIT:
                self.db.execute(f"DELETE FROM {table}")
            self.db.executemany(f"INSERT OR REPLACE INTO {table} (key, vec) VALUES (?, ?)",
                                [(k, np.asarray(v, np.float32).tobytes()) for k, v in items.items()])

    def _count(self, table: str) -> int:
        return self.db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]

    def count(self, table: str) -> int:
        with self.lock:
            return self._count(table)

    def close(self) -> None:
        self.db.close()


class Featurizer:
    """Encoders behind a content-hash cache; encoders load lazily, on the first miss."""

    def __init__(self, store: FeatureStore | None = None, device: str = "cpu", precision: str = "fp32") -> None:
        self.store = store or FeatureStore(None)
        self.device = device
        self.precision = check_precision(precision)
        # Keys: [precision:]encoder identity tag:content hash, so a vector is reused only for the
        # same content through the same encoder build at the same precision.
        self.key_prefix = "" if precision == "fp32" else f"{precision}:"
        self._image_encoder = None
        self._text_encoder = None
        self.encoded = {"image": 0, "sentence": 0}

    def image_vectors(self, images: Sequence[Image.Image | Path]) -> np.ndarray:
        """Vectors for PIL images or image files (files are keyed by their bytes, decoded only on a miss)."""
        prefix = self.key_prefix + encoder_key("image")
        keys = [prefix + ("f:" + sha(im.read_bytes()) if isinstance(im, Path) else "p:" + image_key(im))
                for im in images]
        found = self.store.get("image", keys)
        missing = {k: im for k, im in zip(keys, images, strict=True) if k not in found}
        if missing:
            if self._image_encoder is None:
                from dermeval.encoders.image import ImageEncoder

                self._image_encoder = ImageEncoder(self.device, self.precision)
            vecs = self._image_encoder.encode([load_rgb(im) if isinstance(im, Path) else im
                                               for im in missing.values()])
            new = dict(zip(missing, vecs, strict=True))
            self.store.put("image", new)
            found.update(new)
            self.encoded["image"] += len(new)
        return np.stack([found[k] for k in keys]) if keys else np.zeros((0, IMAGE_DIM), np.float32)

    def sentence_vectors(self, units: Sequence[str]) -> np.ndarray:
        prefix = self.key_prefix + encoder_key("text")
        keys = [prefix + sha(u) for u in units]
        found = self.store.get("sentence", keys)
        missing = {k: u for k, u in zip(keys, units, strict=True) if k not in found}
        if missing:
            if self._text_encoder is None:
                from dermeval.encoders.text import TextEncoder

                self._text_encoder = TextEncoder(self.device, self.precision)
            vecs = self._text_encoder.encode(list(missing.values()))
            new = dict(zip(missing, vecs, strict=True))
            self.store.put("sentence", new)
            found.update(new)
            self.encoded["sentence"] += len(new)
        return np.stack([found[k] for k in keys]) if keys else np.zeros((0, TEXT_DIM), np.float32)
