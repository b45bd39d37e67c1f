"""Feature extraction: streamed, cached on disk by content, bf16 as good as fp32 for the probe."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from tlearn.backbones import load_backbone
from tlearn.data.layout import load_splits
from tlearn.features import FeatureCache, extract_features
from tlearn.strategies import LinearProbe


@pytest.fixture(scope="module")
def lite0():
    return load_backbone("efficientnet_lite0")


def test_cache_hits_by_content_and_misses_on_change(tiny_tree, tmp_path, lite0):
    backbone, info = lite0
    samples = load_splits(tiny_tree).train
    cache = tmp_path / "cache"
    first = extract_features(backbone, samples, info.data_config, cache_dir=cache, progress=False, precision="fp32")
    assert first.from_cache == 0 and first.features.shape == (len(samples), 1280)
    again = extract_features(backbone, samples, info.data_config, cache_dir=cache, progress=False, precision="fp32")
    assert again.from_cache == len(samples)
    np.testing.assert_array_equal(first.features, again.features)
    # editing one image invalidates exactly that image
    Image.new("RGB", (40, 40), (255, 0, 255)).save(samples[0].path)
    edited = extract_features(backbone, samples, info.data_config, cache_dir=cache, progress=False, precision="fp32")
    assert edited.from_cache == len(samples) - 1
    assert not np.allclose(edited.features[0], first.features[0])
    # another precision or image size is another cache
    other = extract_features(backbone, samples[:3], info.data_config.with_size(160), cache_dir=cache, progress=False,
                             precision="fp32")
    assert other.from_cache == 0


def test_unreadable_files_are_skipped_and_listed(tiny_tree, tmp_path, lite0):
    backbone, info = lite0
    (tiny_tree / "red" / "broken.png").write_bytes(b"\x89PNG not really")
    splits = load_splits(tiny_tree, val_fraction=0.25)
    samples = splits.train + splits.val
    fs = extract_features(backbone, samples, info.data_config, cache_dir=tmp_path / "c", progress=False)
    assert [s.path.rsplit("/", 1)[-1] for s in fs.skipped] == ["broken.png"]
    assert len(fs.samples) == len(samples) - 1 == fs.features.shape[0]


def test_cache_survives_reopen(tmp_path):
    key = {"backbone": "x", "data": {}, "precision": "fp32"}
    cache = FeatureCache(tmp_path, key)
    cache.put_many([("abc", np.arange(4, dtype=np.float32))])
    cache.close()
    again = FeatureCache(tmp_path, key)
    np.testing.assert_array_equal(again.get_many(["abc", "zzz"])["abc"], np.arange(4, dtype=np.float32))
    assert len(again) == 1


@pytest.mark.slow
def test_bf16_and_fp32_features_give_the_same_probe_accuracy(hymenoptera, tmp_path, lite0):
    from tlearn.device import bf16_supported, pick_device

    if not bf16_supported(pick_device("cpu")):
        pytest.skip("this CPU has no fast bf16")
    backbone, info = lite0
    splits = load_splits(hymenoptera)
    acc = {}
    for precision in ("bf16", "fp32"):
        tr = extract_features(backbone, splits.train, info.data_config, precision=precision,
                              cache_dir=tmp_path, progress=False)
        va = extract_features(backbone, splits.val, info.data_config, precision=precision,
                              cache_dir=tmp_path, progress=False)
        probe = LinearProbe().fit(tr.features, tr.labels, 2)
        acc[precision] = float((probe.predict(va.features) == va.labels).mean())
    assert acc["fp32"] >= 0.93
    assert abs(acc["bf16"] - acc["fp32"]) <= 1.5 / len(splits.val), acc  # at most one image apart
