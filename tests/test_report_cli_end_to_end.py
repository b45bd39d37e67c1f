"""End to end on real images: fit writes report.html; evaluate --save-as + report adds the split; predict --tta."""
from __future__ import annotations

import csv
import json

from report_fakes import labelled_images
from tlearn.cli import main


def _manifest(tmp_path, hymenoptera, train: int = 10, val: int = 6):
    classes = ["ants", "bees"]
    rows = [(p, classes[k], "train") for p, k in labelled_images(hymenoptera / "train", classes, train)]
    rows += [(p, classes[k], "val") for p, k in labelled_images(hymenoptera / "val", classes, val)]
    path = tmp_path / "subset.csv"
    with path.open("w", newline="") as f:
        csv.writer(f).writerows([("path", "label", "split"), *rows])
    extra = tmp_path / "extra.csv"  # another labelled set, evaluated after training
    with extra.open("w", newline="") as f:
        picked = [(p, k) for p, k in labelled_images(hymenoptera / "val", classes, val + 4) if p not in
                  {q for q, _ in labelled_images(hymenoptera / "val", classes, val)}]
        csv.writer(f).writerows([("path", "label"), *[(p, classes[k]) for p, k in picked]])
    return path, extra


def test_fit_report_evaluate_predict_tta(tmp_path, hymenoptera, capsys):
    data, extra = _manifest(tmp_path, hymenoptera)
    run = tmp_path / "run"
    assert main(["-q", "fit", str(data), "--out", str(run), "--no-progress"]) == 0
    report = run / "report.html"
    assert report.is_file(), "fit must end by writing RUN/report.html"
    html = report.read_text()
    assert 'id="roc"' in html and "efficientnet_lite0" in html
    metrics = json.loads((run / "metrics.json").read_text())
    assert "ece" in metrics["val"] and "auroc" in metrics["val"]
    capsys.readouterr()

    assert main(["evaluate", str(run), str(extra), "--save-as", "field", "--json"]) == 0
    field = json.loads(capsys.readouterr().out)
    assert main(["report", str(run)]) == 0
    assert capsys.readouterr().out.strip() == str(report)
    html = report.read_text()
    assert "predictions/field.csv" in html and f"{field['accuracy']:.3f}" in html

    images = [str(p) for p, _ in labelled_images(hymenoptera / "val", ["ants", "bees"], 1)]
    assert main(["predict", str(run), *images, "--json"]) == 0
    plain = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert main(["predict", str(run), *images, "--json", "--tta"]) == 0
    tta = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [p["path"] for p in tta] == [p["path"] for p in plain]
    for p in tta:
        assert abs(sum(p["probabilities"].values()) - 1) < 1e-6
    # averaging over the mirror image changes the probabilities (a photo is not mirror-symmetric)
    assert any(abs(a["probability"] - b["probability"]) > 1e-6 for a, b in zip(plain, tta))
