"""Export a real hymenoptera run to ONNX, int8 ONNX and TorchScript; each must agree with PyTorch on val."""
from __future__ import annotations

import json

import numpy as np
import onnx
import pytest

from export_helpers import exported_onnx, hymenoptera_run
from tlearn.errors import TlearnError
from tlearn.export import ExportError, export_run
from tlearn.export import exporter as exporter_module
from tlearn.export.graph import ImageClassifier
from tlearn.runs.run import Run


@pytest.fixture(scope="module")
def shared(tmp_path_factory, hymenoptera):
    base = tmp_path_factory.getbasetemp() / "export-shared"
    base.mkdir(exist_ok=True)
    return base, hymenoptera


@pytest.fixture(scope="module")
def run_dir(shared):
    return hymenoptera_run(*shared)


def test_onnx_export_matches_pytorch_on_the_whole_val_split(shared, run_dir):
    path = exported_onnx(*shared)
    report = json.loads(path.with_name(path.name + ".json").read_text())
    parity = report["parity"]
    assert parity["n"] == 153  # every hymenoptera val image
    assert parity["max_abs_diff"] <= 1e-4
    assert parity["top1_agreement"] == 1.0
    assert parity["preprocess_max_pixel_diff"] == 0
    # the export's accuracy is the run's own val accuracy: the run's figure comes from bf16 features, the parity
    # check's reference is fp32, so they may differ by the one image bf16 may flip
    assert parity["accuracy_export"] == pytest.approx(Run(run_dir).metrics["val"]["accuracy"], abs=1.5 / 153)

    model = onnx.load(str(path))
    meta = {p.key: json.loads(p.value) for p in model.metadata_props}
    assert meta["tlearn.classes"] == ["ants", "bees"]
    assert meta["tlearn.input_size"] == Run(run_dir).data_config.input_size == 256  # lite0 predicts at 256 px
    assert len(meta["tlearn.config_sha256"]) == 64
    (inp,) = model.graph.input
    assert inp.type.tensor_type.elem_type == onnx.TensorProto.UINT8
    dims = [d.dim_value or d.dim_param for d in inp.type.tensor_type.shape.dim]
    assert dims[1:] == [256, 256, 3] and isinstance(dims[0], str)  # dynamic batch


def test_int8_export_is_smaller_and_reports_its_accuracy_delta(shared, run_dir, tmp_path):
    fp32 = exported_onnx(*shared)
    result = export_run(run_dir, "onnx", tmp_path / "hym.int8.onnx", quantize="int8", max_accuracy_drop=0.05)
    assert result.bytes < 0.5 * fp32.stat().st_size
    report = json.loads(result.report_path.read_text())
    assert report["quantization"] == "int8"
    assert report["parity"]["n"] == 153
    delta = report["parity"]["accuracy_delta"]
    assert delta == pytest.approx(report["parity"]["accuracy_export"] - report["parity"]["accuracy_pytorch"])
    assert delta >= -0.05
    assert report["fp32_parity"]["max_abs_diff"] <= 1e-4


def test_torchscript_export_matches_pytorch(run_dir, tmp_path):
    from tlearn.export.torchscript_format import load_torchscript

    result = export_run(run_dir, "torchscript", tmp_path / "hym.pt")
    assert result.parity["n"] == 153
    assert result.parity["max_abs_diff"] <= 1e-4
    assert result.parity["top1_agreement"] == 1.0
    module, meta = load_torchscript(result.path)
    assert meta["classes"] == ["ants", "bees"] and meta["format"] == "torchscript"
    import torch

    probs = module(torch.zeros(3, 256, 256, 3, dtype=torch.uint8)).numpy()
    assert probs.shape == (3, 2) and np.allclose(probs.sum(1), 1, atol=1e-5)


class _WrongNormalisation(ImageClassifier):
    """A broken export: forgets to normalise, as a hand-written preprocessing bug would."""

    def forward(self, images):
        return super().forward(images) * 0.0 + self.model(images.permute(0, 3, 1, 2).float()).softmax(1)


def test_export_fails_loudly_and_writes_nothing_when_parity_fails(run_dir, tmp_path, monkeypatch):
    monkeypatch.setattr(exporter_module, "ImageClassifier", _WrongNormalisation)
    out = tmp_path / "broken.pt"
    with pytest.raises(ExportError, match="does not match PyTorch"):
        export_run(run_dir, "torchscript", out, max_images=12)
    assert not out.exists()
    assert not list(tmp_path.iterdir())  # no temporary left behind


def test_bad_requests_are_refused_with_a_clear_error(run_dir, tmp_path):
    with pytest.raises(TlearnError, match="--quantize int8 is available for --format onnx"):
        export_run(run_dir, "torchscript", tmp_path / "x.pt", quantize="int8")
    with pytest.raises(TlearnError, match="--format must be one of"):
        export_run(run_dir, "tflite", tmp_path / "x.tflite")
    with pytest.raises(TlearnError, match="not available"):
        export_run(run_dir, "onnx", tmp_path / "x.onnx", data=tmp_path / "nowhere")
