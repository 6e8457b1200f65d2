"""The review-flag benchmark's counting: big errors per dimension score, flagged by their narrative."""

from __future__ import annotations

import numpy as np

from benchmarks.bench_review_flags import error_inputs, flag_figures
from dermeval.schema import DIMENSIONS
from pipelines.generalise import big_errors


def test_big_errors_are_counted_per_dimension_score_and_flagged_by_their_narrative():
    rows = [{"scores": dict.fromkeys(DIMENSIONS, 4.0)}, {"scores": dict.fromkeys(DIMENSIONS, 1.0)}]
    pred = {"scores": np.array([[4.2] * 6, [3.5, 3.5, 3.5, 1.0, 1.0, 1.0]])}
    big = big_errors(rows, pred["scores"])
    assert big.sum() == 3 and big[1, :3].all()  # off by 2.5 on three dimensions; 0.2 is no big error
    assert flag_figures(np.array([False, True]), big) == {"flagged": 0.5, "big_errors_flagged": 1.0}
    assert flag_figures(np.array([True, False]), big) == {"flagged": 0.5, "big_errors_flagged": 0.0}
    assert flag_figures(np.array([True, False]), None) == {"flagged": 0.5}


def test_the_error_model_reads_one_row_of_outputs_per_narrative():
    n = 4
    pred = {"sigma": np.ones((n, 6)), "scores": np.zeros((n, 6)), "novelty": np.ones((n, 3)),
            "defect_probs": np.zeros((n, 5)), "match": np.ones(n), "match_image": np.ones(n)}
    x = error_inputs(pred)
    assert x.shape == (n, 6 + 6 + 3 + 5 + 3 + 2)
    assert np.isfinite(x).all()
