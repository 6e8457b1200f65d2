"""The novelty distances: the batched sentence-bank distance is the per-record one, whatever the chunking."""

from __future__ import annotations

import numpy as np
import pytest

from dermeval.model.data import FeatureSet
from dermeval.model.ood import SentenceBank


def _feature_set(lengths: list[int], seed: int = 0) -> FeatureSet:
    rng = np.random.default_rng(seed)
    offsets = np.cumsum([0, *lengths]).astype(np.int64)
    n = len(lengths)
    return FeatureSet(ids=[f"r{i}" for i in range(n)], image=rng.normal(size=(1, 8)).astype(np.float32),
                      image_index=np.zeros(n, np.int64),
                      units=rng.normal(size=(int(offsets[-1]), 16)).astype(np.float32), offsets=offsets,
                      unit_index=rng.permutation(int(offsets[-1])).astype(np.int64),  # shared storage order
                      stats=np.zeros((n, 4), np.float32), conclusion=np.full(n, -1, np.int64))


def _one_by_one(bank: SentenceBank, fs: FeatureSet, idx: np.ndarray) -> np.ndarray:
    ref = bank.bank.astype(np.float32)
    out = []
    for i in idx:
        u = fs.units[fs.unit_index[fs.offsets[i]:fs.offsets[i + 1]]]
        if not len(u):
            out.append(0.0)
            continue
        u = u / np.linalg.norm(u, axis=1, keepdims=True)
        out.append(float(np.median(1.0 - (u @ ref.T).max(1))))
    return np.array(out, np.float32)


@pytest.mark.parametrize("chunk", [1, 3, 7, 2048])
def test_batched_sentence_distance_equals_the_per_record_distance(chunk):
    fs = _feature_set([3, 0, 5, 1, 8, 2, 0, 4])
    bank = SentenceBank.fit(fs, np.arange(0, 4), size=50, rng=np.random.default_rng(1))
    idx = np.array([7, 4, 1, 0, 5, 2, 6, 3])  # any order, records without sentences included
    got = bank.distance(fs, idx, chunk=chunk)
    np.testing.assert_allclose(got, _one_by_one(bank, fs, idx), atol=1e-6)
    assert got[idx.tolist().index(1)] == 0.0 and got[idx.tolist().index(6)] == 0.0
    # a training record's sentences are in the bank: distance zero; a new record's are not
    assert bank.distance(fs, np.array([0]))[0] < 1e-6 and bank.distance(fs, np.array([4]))[0] > 0.05


def test_no_records_or_no_sentences_give_zeros():
    fs = _feature_set([0, 0])
    bank = SentenceBank(np.ones((3, 16), np.float16) / 4)
    assert bank.distance(fs, np.array([], np.int64)).shape == (0,)
    assert bank.distance(fs, np.array([0, 1])).tolist() == [0.0, 0.0]
