import math

import pytest

from dermeval.schema import DIMENSIONS, TITLES, ScoreError, dimension_key, normalise_scores, to_titles


def test_six_dimensions_named_once():
    assert len(DIMENSIONS) == 6 and set(TITLES) == set(DIMENSIONS)


@pytest.mark.parametrize("name", ["Medical Groundedness", "medical_groundedness", "medical-groundedness",
                                  " MEDICAL groundedness "])
def test_aliases(name):
    assert dimension_key(name) == "medical_groundedness"


def test_normalise_title_case_round_trip():
    raw = {TITLES[d]: i * 0.5 for i, d in enumerate(DIMENSIONS)}
    scores = normalise_scores(raw)
    assert list(scores) == list(DIMENSIONS)
    assert to_titles(scores) == raw


@pytest.mark.parametrize("bad,field", [
    ({"Accuracy": 5.5}, "scores.Accuracy"),
    ({"Accuracy": -0.1}, "scores.Accuracy"),
    ({"Accuracy": math.nan}, "scores.Accuracy"),
    ({"Accuracy": "high"}, "scores.Accuracy"),
    ({"Accuracy": True}, "scores.Accuracy"),
    ({"Helpfulness": 3}, "scores.Helpfulness"),
])
def test_bad_scores_name_the_field(bad, field):
    full = {d: 3.0 for d in DIMENSIONS if d != "accuracy"}
    with pytest.raises(ScoreError) as exc:
        normalise_scores({**full, **bad})
    assert exc.value.field == field


def test_missing_dimension_reported():
    with pytest.raises(ScoreError, match="missing dimension"):
        normalise_scores({"accuracy": 3})
