"""tlearn.runtime: classify with onnxruntime + numpy + Pillow alone, with tlearn's exact preprocessing."""
from __future__ import annotations

import csv
import io
import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image
from torchvision.transforms import v2 as T
from torchvision.transforms.functional import InterpolationMode

from export_helpers import exported_onnx
from tlearn.data.images import load_rgb
from tlearn.data.transforms import DataConfig, resize_crop
from tlearn.runtime import Classifier, ImageError, Preprocess, decode_image


@pytest.fixture(scope="module")
def onnx_file(tmp_path_factory, hymenoptera):
    base = tmp_path_factory.getbasetemp() / "export-shared"
    base.mkdir(exist_ok=True)
    return exported_onnx(base, hymenoptera)


@pytest.mark.parametrize("size", [(640, 480), (480, 640), (300, 300), (97, 1013), (224, 225), (50, 40)])
@pytest.mark.parametrize("interpolation", ["bicubic", "bilinear"])
def test_resize_crop_is_pixel_identical_to_tlearn(size, interpolation):
    rng = np.random.default_rng(sum(size))
    img = Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))
    cfg = DataConfig(input_size=224, crop_pct=0.875, interpolation=interpolation)
    ours = Preprocess(224, 0.875, interpolation).to_array(img)
    theirs = np.asarray(resize_crop(cfg)(img))
    assert ours.shape == (224, 224, 3)
    assert np.array_equal(ours, theirs)
    # both resample only under the crop: on a smooth (photo-like) image what resizing the whole image and
    # cropping gives, to two grey levels (Pillow runs its passes in the other order: noise's overshoots clip apart)
    smooth = img.resize((max(2, size[0] // 8), max(2, size[1] // 8))).resize(size, Image.BILINEAR)
    whole = T.Compose([T.Resize(cfg.resize_size, interpolation=InterpolationMode(interpolation), antialias=True),
                       T.CenterCrop(224)])
    assert np.abs(np.asarray(resize_crop(cfg)(smooth)).astype(int) - np.asarray(whole(smooth)).astype(int)).max() <= 2


def test_decoding_matches_tlearn_on_odd_modes(tmp_path):
    rng = np.random.default_rng(0)
    cases = {
        "rgba.png": Image.fromarray(rng.integers(0, 256, (30, 40, 4), dtype=np.uint8), "RGBA"),
        "grey16.png": Image.fromarray(rng.integers(0, 65535, (30, 40), dtype=np.uint16)),
        "palette.gif": Image.fromarray(rng.integers(0, 256, (30, 40, 3), dtype=np.uint8)).convert("P"),
        "cmyk.jpg": Image.fromarray(rng.integers(0, 256, (30, 40, 3), dtype=np.uint8)).convert("CMYK"),
    }
    for name, img in cases.items():
        img.save(tmp_path / name)
        assert np.array_equal(np.asarray(decode_image(tmp_path / name)), np.asarray(load_rgb(tmp_path / name))), name


def test_unusable_inputs_raise_image_error_with_a_kind(tmp_path):
    with pytest.raises(ImageError) as exc:
        decode_image(b"hello, not an image")
    assert exc.value.kind == "not_image"
    jpeg = tmp_path / "x.jpg"
    Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(jpeg)
    with pytest.raises(ImageError) as exc:
        decode_image(jpeg.read_bytes()[:300])
    assert exc.value.kind == "corrupt"
    with pytest.raises(ImageError) as exc:
        decode_image(jpeg.read_bytes(), max_pixels=64 * 63)
    assert exc.value.kind == "too_large"


def test_runtime_classifies_without_importing_torch(onnx_file, hymenoptera):
    bees = sorted((hymenoptera / "val" / "bees").iterdir())[:3]
    ants = sorted((hymenoptera / "val" / "ants").iterdir())[:3]
    code = (
        "import json, sys\n"
        "from tlearn.runtime import Classifier\n"
        f"clf = Classifier({str(onnx_file)!r})\n"
        f"preds = clf.predict_files({[str(p) for p in bees + ants]!r})\n"
        "print(json.dumps({'torch': 'torch' in sys.modules, 'labels': [p.label for p in preds],"
        " 'classes': clf.classes}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["torch"] is False
    assert result["classes"] == ["ants", "bees"]
    assert result["labels"] == ["bees"] * 3 + ["ants"] * 3


def test_runtime_cli_prints_one_row_per_image(onnx_file, hymenoptera, tmp_path):
    bee = sorted((hymenoptera / "val" / "bees").iterdir())[0]
    junk = tmp_path / "junk.jpg"
    junk.write_text("not an image")
    out = subprocess.run([sys.executable, "-m", "tlearn.runtime", str(onnx_file), str(bee), str(junk)],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 1  # one image was skipped
    header, row = list(csv.reader(io.StringIO(out.stdout)))
    assert header == ["path", "predicted", "probability"]
    path, label, prob = row
    assert path == str(bee) and label == "bees" and 0.5 < float(prob) <= 1.0
    assert "skipped" in out.stderr and "junk.jpg" in out.stderr


def test_classifier_checks_its_input(onnx_file):
    clf = Classifier(onnx_file)
    with pytest.raises(ValueError, match="expected uint8"):
        clf.probabilities(np.zeros((1, 100, 100, 3), np.uint8))
    size = clf.input_size
    probs = clf.probabilities(np.zeros((2, size, size, 3), np.uint8))
    assert probs.shape == (2, 2) and np.allclose(probs.sum(1), 1, atol=1e-5)
