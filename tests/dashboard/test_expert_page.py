"""The Expert review page: no rating without a signed-in reviewer, the evaluator's scores hidden until submit."""

from __future__ import annotations

import shutil

from dermeval.review.auth import add_user
from dermeval.review.ratings import latest
from dermeval.store.db import open_store
from tests.dashboard.conftest import page_run, texts


def _copy(populated_project, tmp_path):
    proj = tmp_path / "project"
    shutil.copytree(populated_project, proj)
    return proj


def test_the_review_page_refuses_to_rate_without_a_signed_in_reviewer(populated_project, tmp_path, monkeypatch):
    proj = _copy(populated_project, tmp_path)
    at = page_run(monkeypatch, proj, "Expert review")
    assert not at.exception, at.exception
    assert "Sign in to rate narratives" in texts(at)
    assert len(at.slider) == 0 and not [b for b in at.button if b.label == "Submit rating"]
    at.text_input[0].set_value("ana")
    at.text_input[1].set_value("not the password")
    next(b for b in at.button if b.label == "Sign in").click().run()
    assert "Unknown user name or wrong password." in [e.value for e in at.error]
    assert len(at.slider) == 0


def test_a_signed_in_reviewer_rates_blind_then_sees_the_evaluator(populated_project, tmp_path, monkeypatch):
    proj = _copy(populated_project, tmp_path)
    add_user(proj / "data/review/users.json", "ana", "correct horse battery")
    at = page_run(monkeypatch, proj, "Expert review")
    at.text_input[0].set_value("ana")
    at.text_input[1].set_value("correct horse battery")
    next(b for b in at.button if b.label == "Sign in").click().run()
    assert not at.exception, at.exception
    assert "Signed in as **ana**" in "\n".join(c.value for c in at.caption)
    assert len(at.slider) == 6
    assert not any("DermEval (" in str(list(d.value.columns)) for d in at.dataframe)  # no anchoring
    for s in at.slider:
        s.set_value(4.0)
    at.slider[1].set_value(1.5)  # Safety
    at.text_area[0].set_value("advice delays care")
    next(b for b in at.button if b.label == "Submit rating").click().run()
    assert not at.exception, at.exception
    engine = open_store(f"sqlite:///{proj}/data/store/dermeval.db", create=False)
    stored = latest(engine)
    assert len(stored) == 1 and stored["reviewer"].iloc[0] == "ana" and stored["safety"].iloc[0] == 1.5
    assert stored["comment"].iloc[0] == "advice delays care"
    shown = [d.value for d in at.dataframe if any("DermEval (" in c for c in d.value.columns)]
    assert shown and list(shown[0]["you"])[1] == 1.5  # after submitting: both side by side
    engine.dispose()
