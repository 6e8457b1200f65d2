"""DermEval Ops dashboard: the champion, the watched MLLMs, drift, cases, and the expert review.

Every page reads only, except *Expert review* (:mod:`dashboards.expert`), where a signed-in
reviewer's rating is stored.

Run with ``dermeval dashboard`` (or ``streamlit run dashboards/app.py``) from the project
folder, or set ``DERMEVAL_PROJECT``. The store comes from ``DERMEVAL_STORE_URL`` /
``monitor.store_url``; the registry from ``MLFLOW_TRACKING_URI`` / ``register.tracking_uri``.

Longer than 300 lines: one short function per page (eight pages) plus the navigation; the
shared loaders live in :mod:`dashboards.data`.
"""

from __future__ import annotations

import html
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import altair as alt  # noqa: E402
import pandas as pd  # noqa: E402
import streamlit as st  # noqa: E402

from dashboards import data, expert  # noqa: E402
from dermeval.evaluation import PAPER_DERMEVAL_MAE, PAPER_JUDGE_MAE  # noqa: E402
from dermeval.portable import resolve_path  # noqa: E402
from dermeval.redact import masked  # noqa: E402
from dermeval.schema import DIMENSIONS, TITLES  # noqa: E402
from dermeval.store import queries  # noqa: E402

DIMS = [*DIMENSIONS, "overall"]
TITLE = {**TITLES, "overall": "Overall"}
SIMULATED = "Figures from the default DermSynth world are simulated."


@st.cache_resource(show_spinner=False)
def engine(url: str):
    return data.open_engine(url)


@st.cache_data(ttl=60, show_spinner=False)
def q(name: str, url: str, *args, **kwargs):
    eng = engine(url)
    return getattr(queries, name)(eng, *args, **kwargs)


@st.cache_data(ttl=30, show_spinner=False)
def registry_status(project: str):
    return data.registry_status()


def store_or_stop():
    url = data.store_url()
    eng = engine(url)
    if isinstance(eng, data.Missing):
        st.info(f"{eng.message}")
        return None
    if q("table_counts", url)["scores"] == 0:
        st.info(f"The store at {masked(url)} holds no scores yet: run `dvc repro` (monitor stage) or "
                "`dermeval monitor --batch BATCH.jsonl`.")
        return None
    return url


def champion_version() -> str | None:
    """The champion as the monitor names it (``dermeval/v3``), or None when the registry has none or is unreadable."""
    status = registry_status(str(data.project()))
    if isinstance(status, data.Missing) or not status.get("champion"):
        return None
    return f"{status['model']}/v{status['champion']}"


def pick_version(url: str) -> str | None:
    """The evaluator whose view every page shows: the champion's unless the reader picks another."""
    versions = q("evaluator_versions", url)
    if not versions:
        st.info("No batch has been summarised yet: run `dermeval monitor`.")
        return None
    champ = champion_version()
    index = versions.index(champ) if champ in versions else 0
    picked = st.sidebar.selectbox("Evaluator version", versions, index=index, key="version",
                                  format_func=lambda v: f"{v} (champion)" if v == champ else v)
    if champ and champ not in versions:
        st.sidebar.warning(f"The champion {champ} has not scored any batch yet: run the monitor "
                           "(`dvc repro monitor`); showing the last evaluator that did.")
    return picked


def store_and_version() -> tuple[str, str] | None:
    url = store_or_stop()
    version = pick_version(url) if url else None
    return (url, version) if url and version else None


# -- pages -------------------------------------------------------------------------------------

def overview() -> None:
    st.header("Overview")
    status = registry_status(str(data.project()))
    metrics, gen, whose = data.report("metrics.json"), data.report("generalisation.json"), None
    col1, col2, col3 = st.columns(3)
    if isinstance(status, data.Missing):
        st.warning(status.message)
    else:
        col1.metric("Champion", f"v{status['champion']}" if status["champion"] else "none")
        col2.metric("Challenger", f"v{status['challenger']}" if status["challenger"] else "none")
        row = next((v for v in status["versions"] if v["version"] == status["champion"]), None)
        if row and "overall_mae" in row.get("metrics", {}):  # the champion's own figures, from its MLflow run
            metrics = gen = row["metrics"]
            whose = f"champion v{status['champion']}"
    if isinstance(metrics, data.Missing):
        st.info(metrics.message)
    else:
        if whose is None:
            gate = data.report("gate/gate.json")
            latest = f"v{gate['version']}" if not isinstance(gate, data.Missing) else "the latest trained version"
            whose = f"{latest}, the latest trained version (no champion)"
        st.caption(f"Evaluator figures below are those of {whose}.")
        if not isinstance(gen, data.Missing) and "gen_transfer_overall_mae" in gen:
            col3.metric("Transfer deviation (MAE, real text)", f"{gen['gen_transfer_overall_mae']:.3f}",
                        help="Real DermBench cases never seen in training, simulated panel ratings. "
                             f"In-distribution: {metrics['overall_mae']:.3f}.")
        else:
            col3.metric("In-distribution deviation (MAE)", f"{metrics['overall_mae']:.3f}")
        dev = pd.DataFrame({"dimension": [TITLE[d] for d in DIMENSIONS],
                            "MAE": [metrics[f"mae_{d}"] for d in DIMENSIONS]})
        chart = alt.Chart(dev).mark_bar().encode(x="MAE:Q", y=alt.Y("dimension:N", sort=None))
        st.subheader(f"In-distribution deviation from the simulated panel per dimension ({whose})")
        st.altair_chart(chart, width="stretch")
        st.caption(f"{SIMULATED} The paper's figures (DermEval {PAPER_DERMEVAL_MAE}, DermBench judge "
                   f"{PAPER_JUDGE_MAE}) come from real physicians and are not comparable with simulated ones. "
                   "See Evaluator quality for the figures measured outside the training data.")
    gate = data.report("gate/gate.json")
    st.subheader("Latest gate decision")
    if isinstance(gate, data.Missing):
        st.info(gate.message)
    else:
        verdict = "passed" if gate["decision"]["passed"] else "failed"
        after = f"v{gate['champion_after']}" if gate["champion_after"] else "none (nothing has passed the gate)"
        st.markdown(f"**v{gate['version']}**: gate {verdict}; champion after: {after}")
        for reason in gate["decision"]["reasons"]:
            st.markdown(f"- {reason}")
    st.subheader("Open alerts")
    url = data.store_url()
    eng = engine(url)
    if isinstance(eng, data.Missing):
        st.info(eng.message)
        return
    if isinstance(eng, data.Missing) or q("table_counts", url)["scores"] == 0:
        st.info("No batch has been monitored yet.")
        return
    version = pick_version(url)
    alerts = q("open_alerts", url, version)
    st.metric("Open alerts", len(alerts))
    st.caption(f"Raised by evaluator {version}; acknowledged ones included. "
               "`dermeval alerts ack|resolve ID --reason ...` moves one on.")
    if len(alerts):
        st.dataframe(alerts[["id", "batch_id", "status", "kind", "model", "feature", "message"]], hide_index=True)


def trust() -> None:
    st.header("MLLM trustworthiness")
    picked = store_and_version()
    if not picked:
        return
    url, version = picked
    dim = st.selectbox("Dimension", DIMS, format_func=TITLE.get, index=DIMS.index("safety"))
    slices = q("slice_values", url)
    cats = st.multiselect("Categories", slices["categories"])
    skins = st.multiselect("Skin types (Fitzpatrick)", slices["skin_types"])
    series = q("filtered_series", url, version, categories=cats or None, skin_types=skins or None)
    if not len(series):
        st.info("No scores match these filters.")
        return
    weeks = sorted(series["week"].dropna().astype(int).unique())
    if len(weeks) > 1:
        lo, hi = st.select_slider("Weeks", options=weeks, value=(weeks[0], weeks[-1]))
        series = series[series["week"].between(lo, hi)]
    base = alt.Chart(series).encode(x=alt.X("week:O", title="week"), color="model:N")
    chart = base.mark_line(point=True).encode(y=alt.Y(f"{dim}:Q", title=TITLE[dim], scale=alt.Scale(zero=False)),
                                              tooltip=["model", "week", dim, "n"])
    if not cats and not skins:  # confidence bands come with the per-batch trust summaries
        bands = q("trust_over_time", url, version, dim)
        bands = bands[bands["batch_id"].isin(series["batch_id"])]
        band = alt.Chart(bands).mark_area(opacity=0.15).encode(x="week:O", y="ci_low:Q", y2="ci_high:Q",
                                                                color="model:N")
        chart = band + chart
    st.altair_chart(chart, width="stretch")
    latest = series[series["week"] == series["week"].max()]
    ranking = q("trust_over_time", url, version, dim)
    ranking = ranking[ranking["week"] == ranking["week"].max()][["model", "mean", "ci_low", "ci_high", "rank",
                                                                 "rank_stability"]]
    st.subheader(f"Ranking on {TITLE[dim]} (latest batch; stability = share of bootstrap resamples with that rank)")
    st.dataframe(ranking.sort_values("rank"), hide_index=True)
    st.subheader("Latest batch: share under the safety floor and share needing review")
    st.dataframe(latest[["model", "n", "share_below_safety_floor", "share_needs_review"]], hide_index=True)


def drift() -> None:
    st.header("Drift")
    picked = store_and_version()
    if not picked:
        return
    url, version = picked
    expert.canary_view(engine(url))
    batches = q("drift_by_batch", url, version)
    if not len(batches):
        st.info("No drift results yet: the first batches form the reference window.")
        return
    st.dataframe(batches[["batch_id", "week", "features", "drifted"]], hide_index=True)
    batch = st.selectbox("Batch", list(batches["batch_id"]), index=len(batches) - 1)
    details = q("drift_details", url, batch, version)
    st.dataframe(details[["kind", "feature", "model", "statistic", "drifted", "reference_mean", "current_mean"]],
                 hide_index=True)
    path = details["report_path"].dropna().iloc[0] if details["report_path"].notna().any() else None
    if path and Path(path).is_file():
        st.download_button("Evidently report (HTML)", Path(path).read_bytes(), file_name=Path(path).name,
                           mime="text/html")
        if st.checkbox("Show the Evidently report here"):
            st.components.v1.html(Path(path).read_text("utf-8"), height=900, scrolling=True)
    else:
        st.caption("The Evidently HTML report of this batch is not on this machine.")


def registry() -> None:
    st.header("Registry")
    status = registry_status(str(data.project()))
    if isinstance(status, data.Missing):
        st.info(status.message)
        return
    st.markdown(f"Model **{status['model']}** at `{status['tracking_uri']}`: champion "
                f"**v{status['champion']}**, challenger **v{status['challenger']}**")
    versions = pd.DataFrame(status["versions"])
    if len(versions):
        versions["mlflow run"] = versions["run_id"].map(lambda r: f"runs:/{r}")
        st.dataframe(versions[["version", "aliases", "gate", "overall_mae", "mae_safety", "mlflow run"]],
                     hide_index=True)
    st.subheader("Gate decisions and alias history")
    hist = pd.DataFrame(status["history"])
    if len(hist):
        st.dataframe(hist[["time", "event", "version", "by", "reason"]].iloc[::-1], hide_index=True)
    else:
        st.info("No registry events yet.")


def review() -> None:
    """The latest gate decision as a reviewer reads it: the challenger against the champion, same rows."""
    st.header("Promotion review")
    gate = data.report("gate/gate.json")
    if isinstance(gate, data.Missing):
        st.info(gate.message)
        return
    d = gate["decision"]
    champ = d.get("champion_version")
    verdict = "passed" if d["passed"] else "failed"
    where = f" (experiment `{gate['experiment']}`: it proposes, a reviewer promotes)" if gate.get("experiment") else ""
    after = "v" + gate["champion_after"] if gate["champion_after"] else "none"
    st.markdown(f"**v{gate['version']}** against champion **{'v' + champ if champ else 'none'}**: gate "
                f"**{verdict}**{where}; champion after: {after}. MLflow run `{gate['run_id']}`.")
    if gate.get("simulated"):
        st.caption(SIMULATED)
    tables = data.promotion_review(gate)
    paired = d.get("paired") or {}
    if not champ:
        st.info("There was no champion to compare with: the first promoted version is judged on the absolute "
                "bounds and the generalisation figures below.")
    elif paired.get("error") or not len(tables["paired"]):
        st.error(f"The champion could not be re-scored on the challenger's rows: "
                 f"{paired.get('error', 'no comparison')}. Not compared is not passed.")
    else:
        st.subheader(f"Challenger vs champion on the same {paired['n']} test narratives ({paired['n_cases']} cases)")
        st.caption("Difference = challenger - champion, with a 95% CI from resampling cases. For MAE the CI's "
                   "upper end must stay under the margin; for unsafe recall its lower end above minus the margin.")
        st.dataframe(tables["paired"].round(4), hide_index=True)
        if len(tables["slices"]):
            st.subheader("Per slice (overall score's error)")
            st.dataframe(tables["slices"].round(4), hide_index=True)
    st.subheader("Every other check, with its headroom")
    st.dataframe(tables["checks"].round(4), hide_index=True)


def _highlight(text: str, sentences: list[str]) -> str:
    out = html.escape(text)
    for s in sorted(set(sentences), key=len, reverse=True):
        s = html.escape(s.strip())
        if s:
            out = out.replace(s, f"<mark>{s}</mark>")
    return re.sub(r"\n", "<br>", out)


def cases() -> None:
    st.header("Case explorer")
    picked = store_and_version()
    if not picked:
        return
    url, version = picked
    queue = q("review_queue", url, version, None, 200)
    st.subheader("Flagged needs_review (lowest overall first)")
    if not len(queue):
        st.info("No narrative needs review for this evaluator.")
        return
    st.dataframe(queue, hide_index=True)
    nid = st.selectbox("Narrative", list(queue["narrative_id"]))
    row = q("narrative_detail", url, nid, version)
    if not row:
        st.warning(f"{nid} not found")
        return
    left, right = st.columns([1, 2])
    image = resolve_path(row.get("image"), data.project())  # kept relative to the project when inside it
    if image and image.is_file():
        left.image(str(image), caption=f"{row.get('category') or ''} (Fitzpatrick {row.get('fitzpatrick')})")
    else:
        left.caption("image not available on this machine")
    scores = pd.DataFrame({"dimension": [TITLE[d] for d in DIMS], "DermEval": [row[d] for d in DIMS]})
    batch_src = resolve_path(q("batch_source", url, row["batch_id"]), data.project())
    expert = data.truth_scores(str(batch_src), nid) if batch_src else None
    if expert:
        scores["expert (simulated panel)"] = [expert.get(d, sum(expert.values()) / 6) for d in DIMENSIONS] + [
            sum(expert.values()) / 6]
    left.dataframe(scores, hide_index=True)
    evidence = json.loads(row.get("evidence") or "{}")
    drivers = [s for sents in evidence.values() for s in sents]
    right.markdown("**Narrative** (highlighted: the sentences that drove the scores)")
    right.markdown(f"<div style='font-size:0.9em'>{_highlight(row['text'], drivers)}</div>", unsafe_allow_html=True)
    st.subheader("Critique")
    st.code(row["critique"], language=None)


def generalisation() -> None:
    """Figures measured outside what trained the evaluator, shown before the in-distribution ones."""
    rep = data.report("generalisation/report.json")
    if isinstance(rep, data.Missing):
        st.info(rep.message)
        return
    st.subheader("Generalisation: outside the training data")
    st.caption(f"Stress suite on {rep['stress_source']}; ratings from the simulated panel. "
               + ("Transfer: real DermBench expert text never seen in training."
                  if rep["real_text"] else "No DermBench release: real-text transfer was not measured."))
    rows = []
    for key, label in (("transfer", "Transfer"), ("heldout_wording", "Held-out wording"),
                       ("in_distribution", "In-distribution (DermSynth test)")):
        block = rep[key]["evaluator"]
        if block.get("n"):
            rows.append({"set": label, "n": block["n"], "overall MAE": round(block["overall"]["mae"]["value"], 3),
                         **{TITLE[d]: round(block[d]["mae"]["value"], 3) for d in DIMENSIONS}})
    st.dataframe(pd.DataFrame(rows), hide_index=True)
    stress = rep["stress"]
    table = [{"variant": k, "expect": v["expect"], "DermEval": round(v["accuracy"]["value"], 3),
              "judge": round(stress.get("judge", {}).get(k, {}).get("accuracy", {}).get("value", float("nan")), 3),
              "n": v["accuracy"]["n"]} for k, v in stress["evaluator"].items() if k != "overall"]
    st.markdown(f"**Stress suite, directional accuracy** (overall "
                f"{stress['evaluator']['overall']['accuracy']['value']:.2f})")
    st.dataframe(pd.DataFrame(table), hide_index=True)
    clean = rep["clean_references"]["evaluator"]
    st.markdown(f"Clean held-out references: mean overall {clean['overall']:.2f}, "
                f"`needs_review` on {clean.get('needs_review_share', float('nan')):.0%}.")
    overlap = rep["overlap"]["all"]
    st.caption(f"{overlap['sentence_share']:.0%} of the test split's sentences also occur in training; "
               f"{overlap['narratives_all_seen']} of {overlap['narratives']} test narratives use training "
               "sentences only.")


def quality() -> None:
    st.header("Evaluator quality")
    st.caption(SIMULATED)
    generalisation()
    st.subheader("In-distribution test split")
    scatter = data.table("predicted_vs_expert")
    if isinstance(scatter, data.Missing):
        st.info(scatter.message)
        return
    dim = st.selectbox("Dimension", DIMENSIONS, format_func=TITLE.get, key="quality_dim")
    sub = scatter[scatter["dimension"] == dim]
    st.altair_chart(alt.Chart(sub).mark_circle(opacity=0.4).encode(x="expert:Q", y="predicted:Q"),
                    width="stretch")
    calib = data.table("calibration")
    if not isinstance(calib, data.Missing):
        st.subheader("Calibration (mean expert per bin of predicted score)")
        st.altair_chart(alt.Chart(calib).mark_line(point=True).encode(
            x="mean_predicted:Q", y="mean_expert:Q", color="dimension:N"), width="stretch")
    slices = data.table("slice_deviation")
    if not isinstance(slices, data.Missing):
        st.subheader("Deviation per slice (overall MAE)")
        st.altair_chart(alt.Chart(slices).mark_bar().encode(x="overall_mae:Q", y=alt.Y("slice:N", sort="-x")),
                        width="stretch")
    jvd = data.table("judge_vs_dermeval")
    if not isinstance(jvd, data.Missing):
        st.subheader("DermBench judge (reference-based) vs DermEval (reference-free)")
        st.dataframe(jvd, hide_index=True)


def expert_page() -> None:
    picked = store_and_version()
    if not picked:
        st.header("Expert review")
        return
    url, version = picked
    expert.expert_review(engine(url), version)
    expert.agreement_view(engine(url))


PAGES = {"Overview": overview, "MLLM trustworthiness": trust, "Drift": drift, "Registry": registry,
         "Promotion review": review, "Case explorer": cases, "Expert review": expert_page,
         "Evaluator quality": quality}
SLUGS = {name: re.sub(r"[^a-z]+", "-", name.lower()).strip("-") for name in PAGES}


def main() -> None:
    st.set_page_config(page_title="DermEval Ops", layout="wide")
    st.sidebar.title("DermEval Ops")
    wanted = st.query_params.get("page", "overview")
    names = list(PAGES)
    index = next((i for i, n in enumerate(names) if SLUGS[n] == wanted), 0)
    page = st.sidebar.radio("Page", names, index=index, key="page")
    st.query_params["page"] = SLUGS[page]
    PAGES[page]()


main()
