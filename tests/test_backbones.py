"""Backbone registry, offline weight resolution with checksums, and safe loading."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from tlearn.backbones import (
    TransferModel, get_spec, list_specs, load_backbone, load_imagenet_classifier, load_state_dict, resolve,
)
from tlearn.backbones import registry
from tlearn.backbones.weights import WeightsSource
from tlearn.errors import TlearnError, WeightsError

REQUIRED = ["efficientnet_lite0", "vgg16_bn", "resnet18", "resnet50", "inception_v3", "mobilenet_v3_large",
            "convnext_tiny"]


def test_registry_lists_required_backbones_with_metadata():
    names = [s.name for s in list_specs()]
    assert set(REQUIRED) <= set(names)
    assert get_spec("inception_v3").data_config.input_size == 299
    assert get_spec("efficientnet_lite0").data_config.mean == (0.5, 0.5, 0.5)
    assert get_spec("timm:resnet18").feature_dim == 512


@pytest.mark.parametrize("name", REQUIRED + ["mobilenet_v3_small", "timm:mobilenetv3_small_050"])
def test_every_backbone_builds_with_groups_covering_all_parameters(name):
    module, info = load_backbone(name, weights="none")
    model = TransferModel(module, info.feature_dim, 3, info.architecture).eval()
    size = info.data_config.input_size if name != "vgg16_bn" else 64
    with torch.no_grad():
        assert model(torch.zeros(1, 3, size, size)).shape == (1, 3)
    groups = model.layer_groups()
    assert groups[-1][0] == "head" and len(groups) >= 4
    grouped = {id(p) for _, params in groups for p in params}
    assert grouped == {id(p) for p in model.parameters()}


def test_default_weights_are_verified_and_recognise_a_cat():
    skimage = pytest.importorskip("skimage")
    from skimage import data as skdata
    from PIL import Image

    from tlearn.data.transforms import eval_transform

    _, info = load_backbone("efficientnet_lite0")
    assert info.weights_sha256 == get_spec("efficientnet_lite0").weights.sha256
    model = load_imagenet_classifier("efficientnet_lite0")
    x = eval_transform(info.data_config)(Image.fromarray(skdata.chelsea()))[None]
    with torch.no_grad():
        top = int(model(x).argmax())
    assert 281 <= top <= 285, f"ImageNet class {top} is not a domestic cat"  # tabby .. Egyptian cat
    assert skimage


@pytest.fixture
def hub_dir(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    (tmp_path / "hub" / "checkpoints").mkdir(parents=True)
    return tmp_path / "hub" / "checkpoints"


def _resnet18_state(seed=0):
    torch.manual_seed(seed)
    return get_spec("resnet18").create().state_dict()


def test_cached_weights_with_known_checksum_are_found_and_loaded(hub_dir, monkeypatch):
    path = hub_dir / "resnet18-test.safetensors"
    state = _resnet18_state()
    save_file(state, str(path))
    from tlearn.hashing import sha256_file

    spec = dataclasses.replace(get_spec("resnet18"), weights=WeightsSource(filename=path.name, sha256=sha256_file(path)))
    monkeypatch.setitem(registry._REGISTRY, "resnet18", spec)
    module, info = load_backbone("resnet18")
    assert info.weights_origin == "torch-hub-cache" and info.weights_sha256 == sha256_file(path)
    assert torch.equal(module.state_dict()["conv1.weight"], state["conv1.weight"])


def test_wrong_checksum_is_refused(hub_dir, monkeypatch):
    path = hub_dir / "resnet18-test.safetensors"
    save_file(_resnet18_state(), str(path))
    spec = dataclasses.replace(get_spec("resnet18"), weights=WeightsSource(filename=path.name, sha256="0" * 64))
    monkeypatch.setitem(registry._REGISTRY, "resnet18", spec)
    with pytest.raises(WeightsError, match="checksum mismatch"):
        load_backbone("resnet18")
    # torchvision-style names carry a sha256 prefix, which is checked too
    bad = hub_dir / get_spec("resnet18").weights.filename
    torch.save(_resnet18_state(), bad)
    with pytest.raises(WeightsError, match="checksum mismatch"):
        resolve("resnet18", get_spec("resnet18").weights)


def test_explicit_weights_file_and_expected_sha(tmp_path):
    path = tmp_path / "mine.pth"
    torch.save(_resnet18_state(1), path)
    module, info = load_backbone("resnet18", weights=str(path))
    assert info.weights_origin == "explicit"
    with pytest.raises(WeightsError, match="checksum mismatch"):
        load_backbone("resnet18", weights=str(path), weights_sha256="f" * 64)


def test_missing_weights_error_says_where_to_put_them(hub_dir):
    with pytest.raises(WeightsError) as err:
        load_backbone("resnet50")
    msg = str(err.value)
    assert "resnet50-11ad3fa6.pth" in msg and str(hub_dir) in msg and "--weights none" in msg


class Payload:
    """Any object that only unpickling could rebuild."""


def test_loading_never_unpickles_objects(tmp_path):
    path = tmp_path / "evil.pth"
    torch.save({"conv1.weight": torch.zeros(1), "payload": Payload()}, path)
    with pytest.raises(WeightsError, match="cannot load weights"):
        load_state_dict(path)


def test_unknown_backbone_is_a_clear_error():
    with pytest.raises(TlearnError, match="unknown backbone 'resnet9000'"):
        get_spec("resnet9000")
    with pytest.raises(TlearnError, match="timm has no model"):
        get_spec("timm:not_a_model_xyz")


def test_ordered_key_map_gives_identical_logits():
    """The PyPI EfficientNet-Lite0 checkpoint maps onto timm's model tensor for tensor."""
    spec = get_spec("efficientnet_lite0")
    resolved = resolve(spec.name, spec.weights)
    raw = load_state_dict(resolved.path)
    model = load_imagenet_classifier("efficientnet_lite0")
    mapped = model.state_dict()
    for (src_key, src), (dst_key, dst) in zip(raw.items(), mapped.items()):
        assert torch.equal(src, dst), (src_key, dst_key)
    assert np.isfinite(model(torch.zeros(1, 3, 224, 224)).detach().numpy()).all()


def test_random_init_batchnorm_keeps_up_with_training():
    # torchvision's MobileNetV3 averages BatchNorm statistics with momentum 0.01: from scratch on a small set
    # they stay near (0, 1) and eval mode predicts one class. Random init gets PyTorch's default 0.1.
    from tlearn.backbones.model import load_backbone

    backbone, _ = load_backbone("mobilenet_v3_small", "none")
    momenta = {m.momentum for m in backbone.modules() if isinstance(m, torch.nn.BatchNorm2d)}
    assert momenta == {0.1}
