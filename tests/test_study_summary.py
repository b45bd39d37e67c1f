"""The three answers computed from cell records: hand-made records with known answers."""
from __future__ import annotations

import pytest

from tlearn.study.curves import CurvePoint, plateau_point, read_curve, time_to
from tlearn.study.summary import summarize


def _record(strategy, fraction, seed, acc, curve):
    """curve: [(epoch, seconds, val_accuracy)]"""
    return {"strategy": strategy, "fraction": fraction, "seed": seed, "n_train": int(100 * fraction),
            "train_seconds": curve[-1][1], "epochs": curve[-1][0], "run": f"cells/{strategy}",
            "val": {"accuracy": acc, "balanced_accuracy": acc},
            "curve": [{"epoch": e, "seconds": s, "val_accuracy": a} for e, s, a in curve]}


def _study():
    # scratch: slow climb to 0.60 (best 0.60 at 1.0 -> threshold 0.57 reached at epoch 4, 40 s)
    scratch_full = [(1, 10, 0.40), (2, 20, 0.50), (3, 30, 0.55), (4, 40, 0.58), (5, 50, 0.60)]
    scratch_small = [(1, 5, 0.40), (2, 10, 0.45), (3, 15, 0.50)]
    fine_full = [(1, 8, 0.80), (2, 16, 0.90), (3, 24, 0.91)]
    fine_small = [(1, 4, 0.70), (2, 8, 0.75)]
    records = []
    for seed, jitter in ((0, 0.0), (1, 0.02)):
        records += [
            _record("scratch", 1.0, seed, 0.60 - jitter, scratch_full),
            _record("scratch", 0.1, seed, 0.50 - jitter, scratch_small),
            _record("finetune", 1.0, seed, 0.90 - jitter, fine_full),
            _record("finetune", 0.1, seed, 0.75 - jitter, fine_small),
            _record("linear-probe", 1.0, seed, 0.85, [(1, 5, 0.85)]),
            _record("linear-probe", 0.1, seed, 0.55, [(1, 2, 0.55)]),
        ]
    return records


def test_three_answers_match_their_definitions():
    s = summarize(_study(), "val")
    assert s["thresholds"]["1"] == pytest.approx(0.95 * 0.60)
    ft = s["by_strategy"]["finetune"]
    # finetune at 10% (0.74 mean) beats scratch at 100% (0.59 mean): needs 10%, saves 90%
    assert ft["labels_needed_fraction"] == 0.1 and ft["labels_saved"] == pytest.approx(0.9)
    # scratch needs 40 s (epoch 4) to reach 0.57; finetune 8 s (epoch 1)
    assert ft["convergence_speedup"] == pytest.approx(40 / 8)
    assert ft["convergence_speedup_epochs"] == pytest.approx(4.0)
    assert ft["accuracy_gain"] == pytest.approx(0.89 - 0.59)
    assert ft["accuracy_gain_by_fraction"]["0.1"] == pytest.approx(0.74 - 0.49)
    assert ft["beats_scratch_at_every_fraction"]
    lp = s["by_strategy"]["linear-probe"]
    assert lp["labels_needed_fraction"] == 1.0 and lp["labels_saved"] == pytest.approx(0.0)  # 0.55 < 0.59 at 10%
    assert lp["convergence_speedup"] == pytest.approx(40 / 5)
    # headline: the answers of the one strategy chosen on val (finetune, 0.89 against 0.85 at 100%)
    assert s["selected_strategy"] == "finetune" and s["selection"]["split"] == "val"
    assert s["selection"]["val_accuracy"] == {"finetune": pytest.approx(0.89), "linear-probe": pytest.approx(0.85)}
    assert (s["labels_saved"], s["labels_saved_strategy"]) == (pytest.approx(0.9), "finetune")
    assert (s["convergence_speedup"], s["convergence_speedup_strategy"]) == (pytest.approx(5.0), "finetune")
    assert s["accuracy_gain_strategy"] == "finetune"
    # the faster linear probe's 8x is a maximum over strategies, and is labelled so
    best = s["max_over_strategies"]
    assert best["convergence_speedup"] == {"value": pytest.approx(8.0), "strategy": "linear-probe"}
    assert "maximum over strategies" in best["note"] and best["strategies"] == 2
    assert "no test split" in s["selection"]["note"]  # chosen and measured on val: said to be optimistic
    assert len(s["sentences"]) == 3 and "90%" in s["sentences"][0] and "5.0x" in s["sentences"][1]
    assert "chosen on val" in s["sentences"][2]
    row = next(r for r in s["table"] if r["strategy"] == "finetune" and r["fraction"] == 1.0)
    assert row["accuracy_std"] == pytest.approx(0.01) and row["accuracy_min"] == pytest.approx(0.88)
    assert row["epochs_to_plateau_mean"] == 2  # 0.90 is within 0.01 of the best 0.91


def test_a_strategy_worse_than_scratch_gets_no_labels_saved_and_no_speedup():
    records = [
        _record("scratch", 1.0, 0, 0.80, [(1, 10, 0.70), (2, 20, 0.80)]),
        _record("scratch", 0.5, 0, 0.70, [(1, 5, 0.70)]),
        _record("linear-probe", 1.0, 0, 0.60, [(1, 3, 0.60)]),
        _record("linear-probe", 0.5, 0, 0.55, [(1, 2, 0.55)]),
    ]
    s = summarize(records, "val")
    lp = s["by_strategy"]["linear-probe"]
    assert lp["labels_saved"] is None and lp["convergence_speedup"] is None
    assert lp["accuracy_gain"] == pytest.approx(-0.2) and not lp["beats_scratch_at_every_fraction"]
    assert s["labels_saved"] is None and "did not match scratch" in s["sentences"][0]


def _split_record(strategy, fraction, val, test):
    r = _record(strategy, fraction, 0, val, [(1, 10, val)])
    r["test"] = {"accuracy": test, "balanced_accuracy": test}
    return r


def test_the_headline_strategy_is_chosen_on_val_and_reports_its_test_figure():
    # lucky-on-test is best on test (0.95) but worse on val (0.70) than steady (0.90 val, 0.85 test)
    records = [
        _split_record("scratch", 1.0, 0.60, 0.60), _split_record("scratch", 0.5, 0.50, 0.50),
        _split_record("steady", 1.0, 0.90, 0.85), _split_record("steady", 0.5, 0.80, 0.70),
        _split_record("lucky-on-test", 1.0, 0.70, 0.95), _split_record("lucky-on-test", 0.5, 0.65, 0.90),
    ]
    s = summarize(records, "test")
    assert s["metric"] == "test accuracy" and s["selected_strategy"] == "steady"
    assert "note" not in s["selection"]  # chosen on val, reported on test: nothing to warn about
    assert s["accuracy_gain"] == pytest.approx(0.85 - 0.60) and s["accuracy_gain_strategy"] == "steady"
    assert s["accuracy_gain_by_fraction"] == {"0.5": pytest.approx(0.20), "1": pytest.approx(0.25)}
    assert s["labels_saved"] == pytest.approx(0.5)  # steady at 50% (0.70 test) >= scratch at 100% (0.60)
    # the best test figure of any strategy stays visible, labelled as a maximum over strategies
    best = s["max_over_strategies"]
    assert best["accuracy_gain"] == {"value": pytest.approx(0.35), "strategy": "lucky-on-test"}
    assert best["accuracy_gain_by_fraction"]["0.5"] == pytest.approx(0.40)
    assert "steady (chosen on val)" in s["sentences"][2] and "0.850" in s["sentences"][2]
    assert "0.950" not in " ".join(s["sentences"])


def test_the_report_names_the_selection_and_labels_the_maximum():
    from tlearn.study.report import _answer_cards

    records = [_split_record("scratch", 1.0, 0.6, 0.6), _split_record("steady", 1.0, 0.9, 0.85),
               _split_record("lucky-on-test", 1.0, 0.7, 0.95)]
    html = _answer_cards(summarize(records, "test"))
    assert "steady (chosen on val)" in html and 'id="selection"' in html
    assert "Maximum over 2 strategies (optimistic" in html and "+0.350 (lucky-on-test)" in html


def test_without_scratch_there_are_no_answers():
    s = summarize([_record("linear-probe", 1.0, 0, 0.9, [(1, 3, 0.9)])], "val")
    assert s["labels_saved"] is None and s["by_strategy"] == {}
    assert "no baseline" in s["sentences"][0]


def test_curve_helpers(tmp_path):
    curve = [CurvePoint(1, 10, 0.5), CurvePoint(2, 20, 0.79), CurvePoint(3, 30, 0.8)]
    assert time_to(curve, 0.6) == {"epochs": 2, "seconds": 20}
    assert time_to(curve, 0.9) == {"epochs": None, "seconds": None}
    assert plateau_point(curve).epoch == 2
    history = tmp_path / "history.csv"
    history.write_text("epoch,lr,train_loss,val_loss,val_accuracy,seconds\n1,0.1,1,1,0.5,4\n2,0.1,1,1,,3\n"
                       "3,0.1,1,1,0.7,5\n")
    # per-epoch durations are summed; rows without a val accuracy are skipped
    assert read_curve(history) == [CurvePoint(1, 4, 0.5), CurvePoint(3, 12, 0.7)]
    # time outside epochs (train_seconds 20 vs 12 in epochs) comes first
    assert read_curve(history, total_seconds=20) == [CurvePoint(1, 12, 0.5), CurvePoint(3, 20, 0.7)]
    assert read_curve(tmp_path / "missing.csv") == []
