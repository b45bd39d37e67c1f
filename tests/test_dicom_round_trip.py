"""Grey pictures written as 12-bit DICOM (MONOCHROME1 and 2, rescale and window tags) get the same predictions as
the pictures themselves: through fit/predict, the CLI, the exported ONNX runtime and a served upload.

The pictures are chest_xray_pneumonia JPEGs when ../shared/data has them, synthetic grey PNGs otherwise."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

pytest.importorskip("pydicom")
pytest.importorskip("onnxruntime")

from conftest import SHARED_DATA, write_class_tree  # noqa: E402
from dicom_helpers import grey_as_dicom, write_dicom  # noqa: E402
from export_helpers import Server, multipart  # noqa: E402
from tlearn.cli import main  # noqa: E402
from tlearn.export import export_run  # noqa: E402
from tlearn.export.exporter import FP32_LIMIT  # noqa: E402
from tlearn.fitting import fit  # noqa: E402
from tlearn.runs.run import Run  # noqa: E402
from tlearn.runtime import Classifier, Preprocess, decode_image  # noqa: E402

CHEST = SHARED_DATA / "chest_xray_pneumonia"


def _pictures(tmp_path: Path) -> tuple[Path, list[Path], int]:
    """(manifest CSV with train/val rows, pictures to predict, image size): chest X-rays or synthetic greys."""
    rows = []
    if CHEST.is_dir():
        for cls in ("NORMAL", "PNEUMONIA"):
            files = sorted((CHEST / "train" / cls).iterdir())
            rows += [(p, cls, "train") for p in files[:8]] + [(p, cls, "val") for p in files[8:11]]
        predict = [p for p, _, split in rows if split == "val"]
        size = 128  # no JPEG draft scaling (224 px / 2 < 128), so both decode at full size
    else:
        tree = write_class_tree(tmp_path / "colour", {"dark": 11, "light": 11}, size=40)
        for k, path in enumerate(sorted(tree.rglob("*.png"))):
            Image.open(path).convert("L").save(path)
            rows.append((path, path.parent.name, "val" if k % 11 >= 8 else "train"))
        predict = [p for p, _, split in rows if split == "val"]
        size = 32
    manifest = tmp_path / "data.csv"
    with open(manifest, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", "label", "split"])
        w.writerows([str(p), label, split] for p, label, split in rows)
    return manifest, predict, size


def _as_dicom(pictures: list[Path], folder: Path) -> dict[Path, Path]:
    """Each picture as 12-bit DICOM, alternately MONOCHROME1 and 2; one without an extension."""
    folder.mkdir()
    out = {}
    for k, picture in enumerate(pictures):
        g = np.asarray(Image.open(picture).convert("L"))
        name = f"{k:02d}_{picture.stem}" + ("" if k == 0 else ".dcm")
        out[picture] = grey_as_dicom(g, folder / name, "MONOCHROME1" if k % 2 else "MONOCHROME2")
    return out


def test_dicom_copies_predict_like_the_pictures_everywhere(tmp_path, capsys):
    manifest, pictures, size = _pictures(tmp_path)
    dicoms = _as_dicom(pictures, tmp_path / "dicom")
    run = fit(manifest, tmp_path / "run", strategy="linear-probe", backbone="compact_cnn", weights="none",
              image_size=size, num_workers=0, progress=False)
    assert run.data_config.dicom_window == "auto"
    assert yaml.safe_load((run.path / "config.yaml").read_text())["fit"]["dicom_window"] == "auto"

    # fit's predict path
    by_path = {Path(p.path): p for p in run.predict(pictures)[0]}
    from_dicom, skipped = run.predict(tmp_path / "dicom")
    assert not skipped and len(from_dicom) == len(pictures)
    for p in from_dicom:
        original = by_path[next(k for k, v in dicoms.items() if v == Path(p.path))]
        assert p.label == original.label
        for c in run.classes:
            assert p.probabilities[c] == pytest.approx(original.probabilities[c], abs=1e-6)

    # the CLI reads the run's window back from the run directory
    capsys.readouterr()
    assert main(["predict", str(run.path), str(tmp_path / "dicom"), "--json"]) == 0
    cli = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert {Path(r["path"]).name: r["predicted"] for r in cli} == {Path(p.path).name: p.label for p in from_dicom}

    # the exported model with the torch-free runtime
    onnx = tmp_path / "model.onnx"
    export_run(run, "onnx", onnx)
    clf = Classifier(onnx)
    assert clf.preprocess.dicom_window == "auto"
    originals = clf.predict_files(pictures, k=len(run.classes))
    copies = clf.predict_files([dicoms[p] for p in pictures], k=len(run.classes))
    for a, b, p in zip(originals, copies, pictures):
        assert a.label == b.label == by_path[p].label
        assert dict(a.top) == pytest.approx(dict(b.top), abs=1e-6)

    # a DICOM upload to the service
    srv = Server(onnx)
    try:
        mono1 = dicoms[pictures[1]]  # MONOCHROME1
        body, headers = multipart([("xray.dcm", mono1.read_bytes(), "application/dicom"),
                                   (pictures[1].name, pictures[1].read_bytes(), "image/jpeg")])
        status, raw = srv.request("/predict", body, headers)
        assert status == 200, raw
        served = json.loads(raw)["predictions"]
        assert served[0]["label"] == served[1]["label"] == by_path[pictures[1]].label
        assert served[0]["probability"] == pytest.approx(served[1]["probability"], abs=1e-6)
    finally:
        srv.stop()


def test_the_recorded_window_is_what_predict_and_the_runtime_apply(tmp_path):
    """A run fitted with --dicom-window none decodes DICOM with none everywhere, not with the file's window."""
    rng = np.random.default_rng(1)
    rows = []
    for cls, level in (("low", 1200), ("high", 2800)):
        for i in range(6):
            stored = np.clip(level + rng.normal(0, 600, (24, 24)), 0, 4095)
            path = write_dicom(tmp_path / f"{cls}{i}.dcm", stored, center=2000.0, width=400.0)
            rows.append((path, cls, "val" if i >= 4 else "train"))
    manifest = tmp_path / "data.csv"
    with open(manifest, "w", newline="") as f:
        csv.writer(f).writerows([("path", "label", "split"), *[(str(p), c, s) for p, c, s in rows]])
    run = fit(manifest, tmp_path / "run", strategy="linear-probe", backbone="compact_cnn", weights="none",
              image_size=16, num_workers=0, progress=False, dicom_window="none")
    reloaded = Run(run.path)
    assert reloaded.data_config.dicom_window == "none"
    export_run(reloaded, "onnx", tmp_path / "m.onnx")  # its parity check decodes val with both paths
    clf = Classifier(tmp_path / "m.onnx")
    assert clf.preprocess.dicom_window == "none" and clf.metadata["data_config"]["dicom_window"] == "none"
    files = [p for p, _, _ in rows]
    torch_preds = reloaded.predict(files, precision="fp32")[0]  # fp32, as export's own parity check
    for a, b in zip(torch_preds, clf.predict_files(files, k=2)):
        assert a.probabilities[b.label] == pytest.approx(b.probability, abs=FP32_LIMIT)
    auto = Preprocess(16, 1.0, "bilinear", "auto").to_array(decode_image(files[0], dicom_window="auto"))
    assert not np.array_equal(clf.prepare(files[0]), auto)  # the file's narrow window would give other pixels
