"""The linear probe's feature treatment: chosen by CV on train, folded exactly into the saved model."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from tlearn.backbones.model import BackboneInfo, TransferModel, load_transfer_model
from tlearn.data.transforms import DataConfig
from tlearn.runs.writer import save_model
from tlearn.strategies.linear_probe import FEATURE_TREATMENTS, LinearProbe, l2_normalize


def _direction_coded(n_per_class: int = 40, dim: int = 16, seed: int = 0):
    """Classes differ by direction only; each sample has a random length over two orders of magnitude,
    so length is noise that l2 normalisation removes and the other treatments keep."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(3, dim))
    X, y = [], []
    for k, c in enumerate(centres):
        d = c + 0.6 * rng.normal(size=(n_per_class, dim))
        d /= np.linalg.norm(d, axis=1, keepdims=True)
        X.append(d * np.exp(rng.uniform(-2.5, 2.5, size=(n_per_class, 1))))
        y += [k] * n_per_class
    return np.vstack(X), np.array(y)


def test_cv_prefers_l2_when_only_the_direction_carries_the_class():
    X, y = _direction_coded()
    probe = LinearProbe().fit(X, y, 3)
    assert set(probe.cv_scores_) == set(FEATURE_TREATMENTS)
    assert probe.treatment == "l2", probe.cv_scores_
    assert probe.cv_scores_["l2"] > probe.cv_scores_["standardized"] + 0.05


def test_a_fixed_treatment_is_honoured_and_an_unknown_one_refused():
    X, y = _direction_coded()
    probe = LinearProbe(features="standardized").fit(X, y, 3)
    assert probe.treatment == "standardized" and list(probe.cv_scores_) == ["standardized"]
    with pytest.raises(ValueError, match="feature treatment"):
        LinearProbe(features="whitened").fit(X, y, 3)


@pytest.mark.parametrize("treatment", FEATURE_TREATMENTS)
def test_the_transfer_model_gives_the_probe_s_probabilities(treatment, tmp_path):
    X, y = _direction_coded()
    X = X.astype(np.float32) + 0.5  # an offset, so the affine folds are exercised
    probe = LinearProbe(features=treatment).fit(X, y, 3)
    dim = X.shape[1]
    model = TransferModel(nn.Identity(), dim, 3, "compact_cnn", feature_norm="l2" if treatment == "l2" else None)
    w, b = probe.linear_weights()
    with torch.no_grad():
        model.head.weight.copy_(w)
        model.head.bias.copy_(b)
    with torch.no_grad():
        p_model = torch.softmax(model(torch.from_numpy(X)).double(), 1).numpy()
    np.testing.assert_allclose(p_model, probe.predict_proba(X), atol=1e-5)
    np.testing.assert_allclose(probe.predict_proba(X), probe.model_.predict_proba(
        probe.treatment_.transform(X)), atol=1e-4)


def test_the_feature_norm_survives_saving_and_loading(tmp_path, monkeypatch):
    import tlearn.backbones.model as model_module

    class FakeSpec:
        def create(self):
            return nn.Identity()

        def strip(self, m):
            return m

    monkeypatch.setattr(model_module, "get_spec", lambda name: FakeSpec())
    info = BackboneInfo("fake", "fake", 4, DataConfig(input_size=8), "none")
    model = TransferModel(nn.Identity(), 4, 2, "fake", feature_norm="l2")
    save_model(model, tmp_path / "model.safetensors")
    again = load_transfer_model(tmp_path / "model.safetensors", info, 2)
    assert again.feature_norm == "l2"
    x = torch.randn(5, 4) * 10
    torch.testing.assert_close(again(x), model(x))
    plain = TransferModel(nn.Identity(), 4, 2, "fake")
    save_model(plain, tmp_path / "plain.safetensors")
    assert load_transfer_model(tmp_path / "plain.safetensors", info, 2).feature_norm is None


def test_l2_normalize_gives_rms_one_per_dimension():
    X = np.random.default_rng(0).normal(size=(10, 64)) * 7
    Z = l2_normalize(X)
    np.testing.assert_allclose(np.sqrt((Z ** 2).mean(1)), 1.0)


def test_an_l2_headed_model_exports_to_onnx_with_the_same_probabilities(tmp_path):
    onnxruntime = pytest.importorskip("onnxruntime")
    from tlearn.export.graph import ImageClassifier, example_input
    from tlearn.export.onnx_format import export_onnx

    backbone = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    model = TransferModel(backbone, 8, 3, "fake", feature_norm="l2").eval()
    graph = ImageClassifier(model, DataConfig(input_size=16))
    export_onnx(graph, tmp_path / "m.onnx", {})
    x = example_input(16, batch=3)
    session = onnxruntime.InferenceSession(str(tmp_path / "m.onnx"))
    got = session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
    with torch.no_grad():
        np.testing.assert_allclose(got, graph(x).numpy(), atol=1e-5)
