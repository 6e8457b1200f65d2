"""The dashboard's *Expert review* page: a signed-in reviewer rates what the evaluator is least sure of.

The one page that writes: an expert rating, only for a signed-in reviewer (Streamlit's OIDC
login where ``.streamlit/secrets.toml`` configures ``[auth]``, else the local users file of
``review.users_file``). The narrative is shown rendered; the evaluator's scores stay hidden until
the reviewer has submitted (no anchoring), then appear beside the reviewer's own. Also here:
the agreement between reviewers, and (shown on the Drift page) the canary set.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import streamlit as st

from dashboards import data
from dermeval.portable import resolve_path
from dermeval.schema import DIMENSIONS, TITLES


def _oidc_configured() -> bool:
    try:
        return "auth" in st.secrets
    except Exception:  # no secrets file at all
        return False


def signed_in_reviewer() -> str | None:
    """The reviewer's name once signed in (OIDC or the local users file), else None after showing the sign-in."""
    if _oidc_configured():
        if getattr(st.user, "is_logged_in", False):
            return str(st.user.get("email") or st.user.get("name") or "")
        st.info("Sign in with your organisation's account to rate narratives.")
        st.button("Sign in", on_click=st.login, key="oidc_login")
        return None
    if st.session_state.get("reviewer"):
        return st.session_state["reviewer"]
    params = data._params()
    users = data.project() / (params.review.users_file if params else "data/review/users.json")
    st.info("Sign in to rate narratives: ratings are stored under your name. Reviewers are added with "
            "`dermeval review add-user NAME` (or set up single sign-on, see docs/review.md).")
    with st.form("sign_in"):
        name = st.text_input("User name")
        password = st.text_input("Password", type="password")
        if st.form_submit_button("Sign in"):
            from dermeval.review.auth import AuthError, verify

            try:
                ok = verify(users, name.strip(), password)
            except AuthError as exc:
                st.error(str(exc))
                return None
            if ok:
                st.session_state["reviewer"] = name.strip()
                st.rerun()
            st.error("Unknown user name or wrong password.")
    return None


def _queue(eng, version: str, reviewer: str) -> list[dict]:
    from dermeval.review.queue import queue_for

    return queue_for(eng, version, data._params(), reviewer=reviewer)


def _reveal(eng, version: str, nid: str, mine: dict[str, float] | None) -> None:
    from dermeval.store import queries

    row = queries.narrative_detail(eng, nid, version)
    if not row:
        return
    table = pd.DataFrame({"dimension": [TITLES[d] for d in DIMENSIONS],
                          "you": [mine[d] for d in DIMENSIONS] if mine else [None] * 6,
                          f"DermEval ({version})": [round(row[d], 2) for d in DIMENSIONS]})
    st.success("Stored. The evaluator's scores, now that yours are in:")
    st.dataframe(table, hide_index=True)
    if st.button("Next narrative", key="next"):
        st.session_state.pop("revealed", None)
        st.rerun()


def expert_review(eng, version: str) -> None:
    st.header("Expert review")
    reviewer = signed_in_reviewer()
    if not reviewer:
        return
    st.caption(f"Signed in as **{reviewer}**. Rate on the DermEval 0-5 scale; the evaluator's scores are shown "
               "only after you submit.")
    revealed = st.session_state.get("revealed")
    if revealed:
        _reveal(eng, version, revealed["narrative_id"], revealed["scores"])
        return
    queue = _queue(eng, version, reviewer)
    if not queue:
        st.info("Nothing left to rate in the latest batch: every queued narrative has its reviewers.")
        return
    item = queue[0]
    nid = item["narrative_id"]
    st.caption(f"{len(queue)} in your queue; this one was picked by "
               + ("chance (the random share keeps estimates unbiased)" if item["selected_by"] == "random"
                  else "expected value (" + ", ".join(f"{k} {v:.2f}" for k, v in item["why"].items()) + ")"))
    from dermeval.store import queries

    row = queries.narrative_detail(eng, nid, version)
    left, right = st.columns([1, 2])
    image = resolve_path(row.get("image"), data.project()) if row else None
    if image and Path(image).is_file():
        left.image(str(image), caption=f"Fitzpatrick {row.get('fitzpatrick') or '?'}")
    else:
        left.warning("The image is not available on this machine: rate only if the text alone lets you.")
    right.markdown(f"**Narrative** by `{item['model']}`")
    right.markdown(row["text"] if row else "")  # rendered markdown, as the MLLM wrote it
    with st.form(f"rate_{nid}"):
        scores = {d: st.slider(TITLES[d], 0.0, 5.0, 2.5, 0.5, key=f"score_{d}") for d in DIMENSIONS}
        comment = st.text_area("Comment (what is wrong or missing, in your words)", key="comment")
        rate, skip = st.columns(2)
        submitted = rate.form_submit_button("Submit rating")
        skipped = skip.form_submit_button("Skip")
    if submitted or skipped:
        from dermeval.review.ratings import Rating, ReviewError, submit

        try:
            submit(eng, [Rating(nid, reviewer, None if skipped else scores, comment or "")])
        except ReviewError as exc:
            st.error(str(exc))
            return
        if skipped:
            st.rerun()
        st.session_state["revealed"] = {"narrative_id": nid, "scores": scores}
        st.rerun()


def agreement_view(eng) -> None:
    from dermeval.review.ratings import agreement, latest

    result = agreement(latest(eng))
    st.subheader("Agreement between reviewers")
    if result["n_ratings"] == 0:
        st.info("No expert ratings yet.")
        return
    st.caption(f"{result['n_ratings']} ratings of {result['n_narratives']} narratives by "
               f"{result['n_reviewers']} reviewer(s); {result.get('n_multi_rated', 0)} rated by two or more.")
    st.dataframe(pd.DataFrame([{"dimension": TITLES[d], "ICC(2,1)": a["icc"], "narratives (ICC)": a["icc_n"],
                                "pairwise MAE": a["pairwise_mae"], "pairs": a["pairs"]}
                               for d, a in result["dimensions"].items()]), hide_index=True)
    if result["reviewers"]:
        st.dataframe(pd.DataFrame([{"reviewer": r, "ratings": v["n"],
                                    **{TITLES[d]: v["mae_vs_consensus"][d] for d in DIMENSIONS}}
                                   for r, v in result["reviewers"].items()]), hide_index=True)
        st.caption("Each reviewer's MAE against the mean of the other reviewers of the same narratives.")


def canary_view(eng) -> None:
    """Beside drift: did the evaluator change? The fixed canary set, scored by every evaluator version."""
    from dermeval.monitor.canary import canary_report

    params = data._params()
    path = data.project() / params.monitor.canary if params and params.monitor.canary else None
    st.subheader("Canary set (did the evaluator change?)")
    rows = canary_report(eng, path)
    if not rows:
        st.info("No evaluator has scored a canary set yet: set `monitor.canary` to a fixed rated set and run "
                "the monitor (`dvc repro monitor`).")
        return
    st.dataframe(pd.DataFrame(rows), hide_index=True)
    st.caption("The canary's narratives never change: when its scores move (moved_vs_previous, mean absolute "
               "change of the overall score), the evaluator changed, not the MLLMs. Deviations are from the "
               "canary's own ratings (the simulated panel in the default world).")
