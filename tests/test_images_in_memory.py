"""The Python API takes images as people hold them: a PIL image, a numpy array (grey, RGB, RGBA; uint8 or float in
[0, 1]) or a list mixing them with paths gives what the same image saved as PNG gives, in Run.predict, the
torch-free runtime's Classifier.predict and explain; one Prediction type for both predicts."""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from explain_data import write_marked_tree
from tlearn.runtime import Classifier, ImageError, Prediction, array_to_image, image_inputs

H, W = 41, 53  # not the model's 32 px: every image is resized and cropped


def _kinds() -> dict[str, object]:
    """One image of each kind people hold, keyed by a name for the test ids."""
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
    rgb[5:15, 8:18] = (230, 40, 40)  # a red key square, so the model's answer is not a coin toss
    rgba = np.dstack([rgb, rng.integers(0, 256, (H, W), dtype=np.uint8)])
    return {
        "pil_rgb": Image.fromarray(rgb),
        "pil_l": Image.fromarray(rgb[:, :, 1]),
        "array_hw_uint8": rgb[:, :, 0].copy(),
        "array_hw1_uint8": rgb[:, :, 2:3].copy(),
        "array_hw3_uint8": rgb[::-1].copy(),
        "array_hw3_float": rng.random((H, W, 3)),
        "array_hw4_uint8": rgba,
    }


def _as_png(obj, path) -> str:
    """What saving the image as PNG means: a float array is its 0..255 levels (rounded)."""
    if isinstance(obj, np.ndarray):
        if obj.dtype.kind == "f":
            obj = np.rint(obj * 255).astype(np.uint8)
        obj = Image.fromarray(obj[:, :, 0] if obj.ndim == 3 and obj.shape[2] == 1 else obj)
    obj.save(path)
    return str(path)


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    """(names, in-memory images, the same images as PNG files)."""
    folder = tmp_path_factory.mktemp("in_memory")
    kinds = _kinds()
    return list(kinds), list(kinds.values()), [_as_png(obj, folder / f"{name}.png") for name, obj in kinds.items()]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """A compact_cnn trained from scratch on 32 px synthetic images (seconds), and its ONNX export."""
    from tlearn import fit
    from tlearn.export import export_run

    root = tmp_path_factory.mktemp("tiny")
    write_marked_tree(root / "data" / "train", 16, seed=0)
    write_marked_tree(root / "data" / "val", 6, seed=1)
    run = fit(root / "data", root / "run", strategy="scratch", backbone="compact_cnn", weights="none",
              image_size=32, epochs=2, augment="none", progress=False, seed=0, cache_dir=str(root / "cache"))
    onnx = root / "model.onnx"
    export_run(run.path, "onnx", onnx)
    return run, onnx


def _probabilities(preds: list[Prediction], classes: list[str]) -> np.ndarray:
    return np.array([[p.probabilities[c] for c in classes] for p in preds])


def test_arrays_become_what_their_png_file_reads_as(images, tmp_path):
    names, objs, files = images
    for name, obj, path in zip(names, objs, files):
        if isinstance(obj, np.ndarray):
            with Image.open(path) as img:
                assert np.array_equal(np.asarray(array_to_image(obj)), np.asarray(img)), name
                assert array_to_image(obj).mode == img.mode, name


def test_run_predict_on_images_in_memory_equals_their_files(tiny_run, images):
    run, _ = tiny_run
    names, objs, files = images
    from_files, skipped = run.predict(files, precision="fp32")
    assert not skipped and [p.source for p in from_files] == files
    for obj, file, ref in zip(objs, files, from_files):  # each kind alone, not in a list
        (pred,), none = run.predict(obj, precision="fp32")
        assert not none and pred.predicted == ref.predicted
        np.testing.assert_allclose(_probabilities([pred], run.classes), _probabilities([ref], run.classes),
                                   atol=1e-6, rtol=0)
    mixed = [files[0], *objs[1:]]  # a path among in-memory images, in one call
    preds, skipped = run.predict(mixed, precision="fp32")
    assert not skipped
    assert [p.source for p in preds] == [files[0]] + [f"<{'PIL.Image' if n.startswith('pil') else 'array'} {i}>"
                                                      for i, n in enumerate(names) if i]
    np.testing.assert_allclose(_probabilities(preds, run.classes), _probabilities(from_files, run.classes),
                               atol=1e-6, rtol=0)
    assert all(p.top[0] == (p.predicted, p.probability) for p in preds)


def test_run_predict_takes_a_folder_and_a_single_path(tiny_run, images):
    run, _ = tiny_run
    _, _, files = images
    folder = Path(files[0]).parent
    folder_preds, _ = run.predict(str(folder))  # its images, recursively, sorted
    assert [p.source for p in folder_preds] == sorted(files)
    (one,), _ = run.predict(files[0])  # a str is one path (not its characters), a Path too
    (same,), _ = run.predict(Path(files[0]))
    assert one.source == files[0] and one.probabilities == same.probabilities


def test_runtime_classifier_on_images_in_memory_equals_their_files(tiny_run, images):
    _, onnx = tiny_run
    clf = Classifier(onnx)
    names, objs, files = images
    from_files = clf.predict(files)
    assert [p.source for p in from_files] == files
    (single,) = clf.predict(files[0])  # one path, not its characters
    assert single.source == files[0] and single.probabilities == from_files[0].probabilities
    for obj, ref in zip(objs, from_files):
        (pred,) = clf.predict(obj)
        assert pred.predicted == ref.predicted
        np.testing.assert_allclose(_probabilities([pred], clf.classes), _probabilities([ref], clf.classes),
                                   atol=1e-6, rtol=0)
    mixed = clf.predict([files[0], *objs[1:]], k=1)
    np.testing.assert_allclose(_probabilities(mixed, clf.classes), _probabilities(from_files, clf.classes),
                               atol=1e-6, rtol=0)
    assert all(len(p.top) == 1 for p in mixed)


def test_explain_on_images_in_memory_equals_their_files(tiny_run, images):
    pytest.importorskip("pytorch_grad_cam")
    from tlearn.explain import explain_images

    run, _ = tiny_run
    names, objs, files = images
    from_files = list(explain_images(run.model, run.data_config, files))
    in_memory = list(explain_images(run.model, run.data_config, objs))
    assert [e.source for e in from_files] == files
    assert [e.source for e in in_memory] == [f"<{'PIL.Image' if n.startswith('pil') else 'array'} {i}>"
                                             for i, n in enumerate(names)]
    for a, b in zip(in_memory, from_files):
        np.testing.assert_allclose(a.probabilities, b.probabilities, atol=1e-6, rtol=0)
        assert np.array_equal(np.asarray(a.crop), np.asarray(b.crop))
        np.testing.assert_allclose(a.maps[0].heatmap, b.maps[0].heatmap, atol=1e-5)


@pytest.mark.parametrize("bad, message", [
    (np.full((8, 8, 3), 2.0), r"\[0, 1\].*spans 2\.\.2"),
    (np.full((8, 8), -0.5), r"\[0, 1\]"),
    (np.array([[np.nan, 0.5]]), r"\[0, 1\]"),
    (np.zeros((8, 8, 2), np.uint8), r"C 1, 3 or 4.*\(8, 8, 2\)"),
    (np.zeros((2, 8, 8, 3), np.uint8), r"H x W"),
    (np.zeros((8, 8), np.int64), r"uint8 .* or float in \[0, 1\].*int64"),
])
def test_unusable_arrays_are_refused_with_what_to_do(bad, message):
    with pytest.raises(ImageError, match=message) as info:
        image_inputs([Image.new("RGB", (4, 4)), bad])
    assert str(info.value).startswith("<array 1>")


def test_other_objects_are_refused_with_what_is_taken():
    with pytest.raises(TypeError, match="a path .* a PIL.Image, a numpy array"):
        image_inputs([1.5])
    with pytest.raises(TypeError, match="got int"):
        image_inputs(3)
    torch = pytest.importorskip("torch")
    with pytest.raises(TypeError, match=r"torch Tensor: pass .* numpy array.*permute\(1, 2, 0\)"):
        image_inputs(torch.zeros(3, 8, 8))


def test_prediction_keeps_path_and_label_as_deprecated_names():
    p = Prediction("a.png", "bees", 0.9, {"ants": 0.1, "bees": 0.9}, [("bees", 0.9), ("ants", 0.1)])
    with pytest.warns(DeprecationWarning, match="Prediction.label is deprecated; use Prediction.predicted"):
        assert p.label == "bees"
    with pytest.warns(DeprecationWarning, match="use Prediction.source"):
        assert p.path == "a.png"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        d = p.to_dict()
    assert d["predicted"] == d["label"] == "bees" and d["source"] == d["path"] == "a.png"
    assert "probabilities" not in p.to_dict(probabilities=False)
