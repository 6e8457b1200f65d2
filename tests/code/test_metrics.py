import numpy as np
import pytest

from dermeval.metrics import METRICS, agreement, dimension_table, inter_rater_ceiling, mean_baseline, slices
from dermeval.schema import DIMENSIONS


def test_perfect_agreement():
    y = np.array([0, 1.5, 2, 3.5, 4, 5, 2.5, 3.0])
    out = agreement(y, y, n_boot=50)
    assert out["mae"]["value"] == 0 and out["rmse"]["value"] == 0
    for m in ("pearson", "spearman", "kendall", "qwk", "icc_a1"):
        assert out[m]["value"] == pytest.approx(1.0)


def test_known_values_and_ci():
    rng = np.random.default_rng(0)
    y = rng.uniform(0, 5, 400)
    p = y + 0.5
    out = agreement(y, p, n_boot=200)
    assert out["mae"]["value"] == pytest.approx(0.5)
    assert out["ba_bias"]["value"] == pytest.approx(0.5)
    assert out["pearson"]["value"] == pytest.approx(1.0)
    assert out["icc_a1"]["value"] < 1.0  # absolute agreement punishes the offset
    noisy = agreement(y, y + rng.normal(0, 0.5, 400), n_boot=300)
    assert noisy["mae"]["ci_low"] < noisy["mae"]["value"] < noisy["mae"]["ci_high"]


def test_directions_declared():
    assert not METRICS["mae"].higher_is_better and METRICS["spearman"].higher_is_better
    assert all(isinstance(m.higher_is_better, bool) for m in METRICS.values())


def test_grouped_bootstrap_and_tables():
    rng = np.random.default_rng(1)
    n = 60
    exp = {d: rng.uniform(1, 5, n) for d in DIMENSIONS}
    pred = {d: exp[d] + rng.normal(0, 0.3, n) for d in DIMENSIONS}
    table = dimension_table(exp, pred, n_boot=100, groups=np.repeat(np.arange(20), 3))
    assert set(table) == {*DIMENSIONS, "overall"}
    base = mean_baseline(exp, exp, n_boot=0)
    assert base["overall"]["mae"]["value"] > table["overall"]["mae"]["value"]
    sl = slices(exp, pred, ["a"] * 30 + ["b"] * 27 + ["c"] * 3, min_size=5, n_boot=50)
    assert set(sl) == {"a", "b"} and sl["a"]["n"] == 30


def test_inter_rater_ceiling():
    rng = np.random.default_rng(2)
    truth = {d: rng.uniform(1, 5, 100) for d in DIMENSIONS}
    raters = {r: {d: truth[d] + rng.normal(0, 0.3, 100) for d in DIMENSIONS} for r in ("a", "b", "c")}
    ceiling = inter_rater_ceiling(raters, n_boot=0)
    assert 0.25 < ceiling["accuracy"]["mae"]["value"] < 0.5


def test_the_printed_overall_is_reported_beside_the_full_precision_one():
    from dermeval.evaluation import evaluation_report, headline
    from dermeval.reporting import model_card

    rng = np.random.default_rng(3)
    rows = []
    for i in range(60):
        truth = rng.uniform(1, 5)
        rows.append({"id": f"r{i}", "case_id": f"c{i // 3}",
                     "scores": {d: float(np.clip(truth + rng.normal(0, 0.3), 0, 5)) for d in DIMENSIONS}})
    predicted = {d: np.array([r["scores"][d] for r in rows]) + rng.normal(0, 0.2, len(rows)) for d in DIMENSIONS}
    report = evaluation_report(rows, predicted, rows, n_boot=50)
    overall_p = np.mean([predicted[d] for d in DIMENSIONS], axis=0)
    overall_y = np.mean([[r["scores"][d] for d in DIMENSIONS] for r in rows], axis=1)
    printed_mae = float(np.mean(np.abs(np.round(overall_p, 1) - overall_y)))
    assert report["overall_reported"]["mae"]["value"] == pytest.approx(printed_mae)
    full_mae = float(np.mean(np.abs(overall_p - overall_y)))
    assert report["evaluator"]["overall"]["mae"]["value"] == pytest.approx(full_mae)
    flat = headline(report)
    assert flat["overall_reported_mae"] == round(printed_mae, 4) and "overall_reported_spearman" in flat
    card = model_card(report, {"calibration": {}, "defect_names": []})
    assert "| Overall as printed (one decimal) |" in card
