"""Evaluation metrics against scikit-learn and hand-counted known inputs."""
from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import (
    average_precision_score,
    classification_report,
    confusion_matrix,
    roc_auc_score,
)

from tlearn.data.layout import Sample
from tlearn.errors import TlearnError
from tlearn.evaluate.binary import binary_curves, operating_point, youden_threshold
from tlearn.evaluate.metrics import (
    classification_metrics,
    confusion_counts,
    expected_calibration_error,
    most_confused,
    per_class_metrics,
    reliability_bins,
    row_normalised,
)
from tlearn.evaluate.predictions import read_predictions
from tlearn.runs.layout import write_predictions


def _random_task(n: int = 300, k: int = 4, seed: int = 0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    logits = rng.normal(0, 1, (n, k))
    logits[np.arange(n), y] += 1.5
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    return y, probs


def test_per_class_matches_sklearn_classification_report():
    y, probs = _random_task()
    classes = ["a", "b", "c", "d"]
    ours = per_class_metrics(y, probs, classes)
    ref = classification_report(y, probs.argmax(1), labels=[0, 1, 2, 3], target_names=classes, output_dict=True,
                                zero_division=0)
    for row in ours:
        r = ref[row["class"]]
        assert row["precision"] == pytest.approx(r["precision"])
        assert row["recall"] == pytest.approx(r["recall"])
        assert row["f1"] == pytest.approx(r["f1-score"])
        assert row["support"] == r["support"]
    assert sum(r["predicted"] for r in ours) == len(y)


def test_per_class_handles_a_class_never_predicted_and_one_absent():
    probs = np.array([[0.9, 0.1, 0.0], [0.8, 0.2, 0.0], [0.3, 0.7, 0.0]])
    y = np.array([0, 1, 1])  # class 2 absent and never predicted
    rows = per_class_metrics(y, probs, ["x", "y", "z"])
    assert rows[0]["precision"] == pytest.approx(0.5) and rows[0]["recall"] == 1.0
    assert rows[1]["precision"] == 1.0 and rows[1]["recall"] == pytest.approx(0.5)
    assert rows[2] == {"class": "z", "precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0, "predicted": 0}


def test_confusion_matches_sklearn_and_rows_normalise():
    y, probs = _random_task(k=5, seed=1)
    counts = confusion_counts(y, probs, 5)
    np.testing.assert_array_equal(counts, confusion_matrix(y, probs.argmax(1), labels=range(5)))
    norm = row_normalised(counts)
    np.testing.assert_allclose(norm.sum(1), 1.0)
    np.testing.assert_allclose(norm, confusion_matrix(y, probs.argmax(1), labels=range(5), normalize="true"))
    empty = row_normalised(np.array([[2, 0], [0, 0]]))
    np.testing.assert_array_equal(empty, [[1.0, 0.0], [0.0, 0.0]])


def test_most_confused_orders_off_diagonal_cells():
    counts = np.array([[5, 3, 0], [1, 4, 0], [0, 6, 2]])
    top = most_confused(counts, ["a", "b", "c"], top=2)
    assert [(m["true"], m["predicted"], m["count"]) for m in top] == [("c", "b", 6), ("a", "b", 3)]
    assert top[0]["rate"] == pytest.approx(0.75)


def test_reliability_bins_by_hand():
    # top probabilities 0.55, 0.65, 0.95, 0.95 with 5 bins: bins (0.4,0.6], (0.6,0.8] and (0.8,1.0]
    probs = np.array([[0.55, 0.45], [0.35, 0.65], [0.95, 0.05], [0.05, 0.95]])
    y = np.array([0, 0, 0, 1])  # right, wrong, right, right
    rb = reliability_bins(y, probs, bins=5)
    np.testing.assert_array_equal(rb.counts, [0, 0, 1, 1, 2])
    np.testing.assert_allclose(rb.accuracy[2:], [1.0, 0.0, 1.0])
    np.testing.assert_allclose(rb.confidence[2:], [0.55, 0.65, 0.95])
    expected = (1 * 0.45 + 1 * 0.65 + 2 * 0.05) / 4
    assert rb.ece == pytest.approx(expected)
    assert expected_calibration_error(y, probs, bins=5) == pytest.approx(expected)


def test_ece_is_zero_for_calibrated_certainty_and_large_for_confident_errors():
    probs = np.array([[1.0, 0.0], [0.0, 1.0]])
    assert expected_calibration_error(np.array([0, 1]), probs) == pytest.approx(0.0)
    assert expected_calibration_error(np.array([1, 0]), probs) == pytest.approx(1.0)


def test_classification_metrics_has_ece_and_binary_auroc():
    y, probs = _random_task(k=2, seed=3)
    m = classification_metrics(y, probs)
    assert m["auroc"] == pytest.approx(roc_auc_score(y, probs[:, 1]))
    assert 0.0 <= m["ece"] <= 1.0
    assert "auroc" not in classification_metrics(*_random_task(k=3))


def test_binary_curves_match_sklearn():
    y, probs = _random_task(k=2, seed=4)
    c = binary_curves(y, probs[:, 1])
    assert c.auroc == pytest.approx(roc_auc_score(y, probs[:, 1]))
    assert c.average_precision == pytest.approx(average_precision_score(y, probs[:, 1]))
    assert c.fpr[0] == 0 and c.tpr[-1] == 1 and c.prevalence == pytest.approx(y.mean())
    with pytest.raises(ValueError, match="both classes"):
        binary_curves(np.zeros(3, dtype=int), np.array([0.1, 0.5, 0.9]))


def test_operating_point_counts_and_rates_by_hand():
    y = np.array([1, 1, 1, 1, 0, 0, 0, 0, 0, 0])
    p = np.array([0.9, 0.8, 0.6, 0.3, 0.7, 0.4, 0.2, 0.1, 0.1, 0.5])
    op = operating_point(y, p, 0.5)  # >= 0.5: positives called are 0.9 0.8 0.6 | 0.7 0.5
    assert (op["tp"], op["fn"], op["tn"], op["fp"]) == (3, 1, 4, 2)
    assert op["sensitivity"] == pytest.approx(0.75)
    assert op["specificity"] == pytest.approx(4 / 6)
    assert op["ppv"] == pytest.approx(3 / 5) and op["npv"] == pytest.approx(4 / 5)
    all_negative = operating_point(np.array([0, 0]), np.array([0.1, 0.2]))
    assert np.isnan(all_negative["sensitivity"]) and all_negative["specificity"] == 1.0


def test_youden_threshold_maximises_sensitivity_plus_specificity():
    y = np.array([0, 0, 0, 1, 1, 1])
    p = np.array([0.1, 0.2, 0.45, 0.4, 0.8, 0.9])
    t = youden_threshold(y, p)
    best = max(operating_point(y, p, s)["sensitivity"] + operating_point(y, p, s)["specificity"] for s in p)
    op = operating_point(y, p, t)
    assert op["sensitivity"] + op["specificity"] == pytest.approx(best)


def test_predictions_csv_round_trip(tmp_path):
    classes = ["cat", "dog", "eel"]
    y, probs = _random_task(n=20, k=3, seed=5)
    samples = [Sample(tmp_path / f"img{i}.png", int(c)) for i, c in enumerate(y)] + [Sample(tmp_path / "u.png", -1)]
    probs = np.vstack([probs, [[0.2, 0.3, 0.5]]])
    write_predictions(tmp_path / "predictions" / "extra.csv", samples, probs, classes)
    table = read_predictions(tmp_path / "predictions" / "extra.csv", classes)
    assert table.split == "extra" and table.classes == classes and len(table) == 21
    np.testing.assert_allclose(table.probs, probs, atol=1e-6)
    assert table.labels[-1] == -1 and len(table.labelled) == 20
    np.testing.assert_array_equal(table.labelled.labels, y)
    with pytest.raises(TlearnError, match="another run"):
        read_predictions(tmp_path / "predictions" / "extra.csv", ["cat", "dog"])
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n")
    with pytest.raises(TlearnError, match="not a tlearn predictions file"):
        read_predictions(bad)


def test_metrics_from_summed_confusion_counts_match_scikit_learn():
    """The training loop's validation figures (from confusion counts summed over processes) are the report's."""
    import warnings

    from sklearn.metrics import balanced_accuracy_score, f1_score

    from tlearn.evaluate.metrics import confusion_counts, confusion_metrics

    rng = np.random.default_rng(0)
    for trial in range(100):
        k, n = int(rng.integers(2, 6)), int(rng.integers(1, 30))
        y = rng.integers(0, k, n) if trial % 3 else np.full(n, int(rng.integers(0, k)))  # one-class splits too
        probs = rng.random((n, k))
        pred = probs.argmax(1)
        got = confusion_metrics(confusion_counts(y, probs, k))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            expected = (balanced_accuracy_score(y, pred),
                        f1_score(y, pred, labels=sorted(set(y.tolist())), average="macro", zero_division=0))
        assert (got["balanced_accuracy"], got["macro_f1"]) == pytest.approx(expected, abs=1e-12)
        assert got["accuracy"] == pytest.approx(float((pred == y).mean()))
