"""tlearn explain, its heatmaps (shape, range, the run's eval transform, every backbone family, ViT tokens), the
Adebayo et al. 2018 sanity check, the report's "Where the model looks" gallery and serve --explain.

One tiny compact_cnn run, trained once per module on synthetic images whose class is a small coloured square
(tests/explain_data.py), serves every test.
"""
from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from explain_data import mark_mask, write_marked_tree
from tlearn.cli import main

pytest.importorskip("pytorch_grad_cam")


@pytest.fixture(scope="module")
def marked(tmp_path_factory):
    """(run directory, {val image path: (key corner, distractor corner)}) of a compact_cnn trained from scratch."""
    from tlearn import fit

    root = tmp_path_factory.mktemp("explain")
    write_marked_tree(root / "data" / "train", 32, seed=0)
    where = write_marked_tree(root / "data" / "val", 12, seed=1)
    # two mislabelled val images: the report's gallery then has confidently wrong ones
    for i, path in enumerate(sorted(p for p in where if "/red/" in p)[:2]):
        shutil.move(path, root / "data" / "val" / "green" / f"wrong_{i}.png")
        where.pop(path)
    run = fit(root / "data", root / "run", strategy="scratch", backbone="compact_cnn", weights="none",
              image_size=32, epochs=6, augment="none", progress=False, seed=0, cache_dir=str(root / "cache"))
    return run.path, where


def test_explain_cli_writes_overlays_and_an_index(marked, tmp_path, capsys):
    run, where = marked
    images = sorted(where)[:3]
    out = tmp_path / "cam"
    assert main(["-q", "explain", str(run), *images, "--class", "green", "--out", str(out)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 3 and all(line.split("\t")[0] in images for line in lines)
    index = json.loads((out / "index.json").read_text())
    assert index["method"] == "gradcam" and index["target_layer"] == "top.2" and len(index["images"]) == 3
    for entry in index["images"]:
        assert entry["maps"][0]["predicted"] and entry["maps"][0]["class"] == entry["predicted"]
        assert {m["class"] for m in entry["maps"]} == {entry["predicted"], "green"}  # each class once
        for name in [entry["input"], *(m["file"] for m in entry["maps"])]:
            assert (out / name).is_file() and (out / name).read_bytes()[:4] == b"\x89PNG"
    html = (out / "index.html").read_text()
    assert html.count("<img") == sum(1 + len(e["maps"]) for e in index["images"])
    # again into the same folder: the earlier output is replaced, a user's file kept
    (out / "mine.txt").write_text("keep")
    assert main(["-q", "explain", str(run), images[0], "--out", str(out), "--method", "gradcam++"]) == 0
    assert len(json.loads((out / "index.json").read_text())["images"]) == 1
    assert (out / "mine.txt").read_text() == "keep" and not list(out.glob("0002-*"))


def test_explain_cli_refuses_what_it_cannot_do(marked, tmp_path, capsys, monkeypatch):
    run, where = marked
    image = sorted(where)[0]
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_:  # --out is required, and says so in --help and the usage line
        main(["explain", str(run), image])
    assert exit_.value.code == 2
    assert "--out DIR" in capsys.readouterr().err and not list(tmp_path.iterdir())  # nothing in the cwd
    assert main(["explain", str(run), image, "--out", "o", "--class", "blue"]) == 2
    assert "not one of the run's classes: green, red" in capsys.readouterr().err
    (tmp_path / "theirs").mkdir()
    (tmp_path / "theirs" / "a.txt").write_text("x")
    assert main(["explain", str(run), image, "--out", "theirs"]) == 2
    assert "--overwrite" in capsys.readouterr().err and sorted(p.name for p in (tmp_path / "theirs").iterdir()) == ["a.txt"]


def test_heatmaps_are_maps_in_0_1_over_exactly_the_runs_eval_crop(marked):
    from tlearn.data.images import load_rgb
    from tlearn.data.transforms import eval_transform
    from tlearn.explain.explain import explain_files
    from tlearn.explain.images import EvalPreprocess
    from tlearn.runs.run import Run

    run_dir, where = marked
    run = Run(run_dir)
    paths = sorted(where)[:4]
    skipped = []
    items = list(explain_files(run.model, run.data_config, [*paths, run_dir / "config.yaml"], batch_size=3,
                               skipped=skipped))
    assert [i.path for i in items] == paths and len(skipped) == 1 and "config.yaml" in skipped[0].path
    for item in items:
        h = item.maps[0].heatmap
        assert h.shape == (32, 32) and h.dtype == np.float32 and h.min() >= 0 and h.max() == pytest.approx(1, abs=1e-5)
        assert item.maps[0].class_index == item.predicted
    predictions, _ = run.predict(paths, precision="fp32")  # as `tlearn predict` computes them in fp32
    for item, pred in zip(items, predictions):
        assert item.probabilities[item.predicted] == pytest.approx(pred.probability, abs=1e-4)
    # the transform split at the crop is the eval transform, also where it resizes and crops (EfficientNet's)
    from tlearn.backbones import get_spec

    cfg = get_spec("efficientnet_lite0").data_config
    img_path = sorted(where)[0]
    ours = EvalPreprocess(cfg).from_path(img_path)
    theirs = eval_transform(cfg)(load_rgb(img_path, draft_size=cfg.resize_size))
    assert ours.crop.size == (cfg.input_size, cfg.input_size) and torch.equal(ours.tensor, theirs)


def test_every_registry_backbone_has_a_target_layer_that_gives_a_map():
    from tlearn.backbones import list_specs
    from tlearn.backbones.model import TransferModel
    from tlearn.explain.targets import cam_target

    for spec in list_specs():
        with torch.device("meta"):  # shapes only: no memory, no weights
            model = TransferModel(spec.strip(spec.create()), spec.feature_dim, 3, spec.name).eval()
            target = cam_target(model.backbone, spec.name)
            seen = {}
            hook = target.layer.register_forward_hook(lambda mod, args, out: seen.setdefault("out", out))
            size = spec.data_config.input_size
            model(torch.zeros(1, 3, size, size))
            hook.remove()
        shape = tuple(target.reshape(seen["out"]).shape)
        assert len(shape) == 4 and shape[2] == shape[3] and 4 <= shape[2] <= 14, (spec.name, target.name, shape)


def test_vit_tokens_are_folded_into_the_patch_grid():
    timm = pytest.importorskip("timm")
    from tlearn.backbones.model import TransferModel
    from tlearn.explain.cam import Explainer
    from tlearn.explain.targets import GridReshape

    tokens = torch.arange(2 * 17 * 3, dtype=torch.float32).reshape(2, 17, 3)  # class token + 4x4 patches
    grid = GridReshape(prefix_tokens=1)(tokens)
    assert grid.shape == (2, 3, 4, 4) and torch.equal(grid[1, :, 2, 3], tokens[1, 1 + 2 * 4 + 3])
    nhwc = torch.randn(2, 4, 4, 8)
    assert torch.equal(GridReshape(channels=8)(nhwc), nhwc.permute(0, 3, 1, 2))

    torch.manual_seed(0)
    vit = timm.create_model("vit_tiny_patch16_224", pretrained=False, img_size=32, patch_size=8, depth=2,
                            embed_dim=48, num_heads=2, num_classes=0)  # ViT-Tiny's layout, made tinier
    model = TransferModel(vit, vit.num_features, 3, "timm:vit_tiny_patch16_224").eval()
    with Explainer(model) as explainer:
        probs, maps = explainer.explain(torch.randn(2, 3, 32, 32), [2, None])
        assert explainer.target.name == "blocks.1.norm1"
    assert probs.shape == (2, 3) and maps[0].class_index == 2
    assert all(m.heatmap.shape == (32, 32) and 0 <= m.heatmap.min() and m.heatmap.max() <= 1 for m in maps)
    assert maps[0].heatmap.std() > 0.01  # a map, not a constant


def test_maps_depend_on_what_was_learned_adebayo_sanity_check(marked):
    """Adebayo et al. 2018: re-initialise every weight and the Grad-CAM maps must change (low Spearman rank
    correlation with the trained model's), while the trained model's maps point at the square that decides."""
    from scipy.stats import spearmanr

    from tlearn.explain.cam import Explainer
    from tlearn.explain.images import EvalPreprocess
    from tlearn.runs.run import Run

    run_dir, where = marked
    run = Run(run_dir)
    assert run.metrics["val"]["accuracy"] >= 0.85
    paths = sorted(where)
    batch = torch.stack([EvalPreprocess(run.data_config).from_path(p).tensor for p in paths])

    def on_key(maps) -> float:  # share of images whose map is hotter on the key square than on the distractor
        return float(np.mean([m.heatmap[mark_mask(where[p][0])].mean() > m.heatmap[mark_mask(where[p][1])].mean()
                              for p, m in zip(paths, maps)]))

    with Explainer(run.model) as explainer:
        _, trained = explainer.explain(batch)
    classes = [m.class_index for m in trained]
    rhos, random_on_key = [], []
    for seed in (1, 2, 3):
        randomised = copy.deepcopy(run.model)
        torch.manual_seed(seed)
        for module in randomised.modules():
            if hasattr(module, "reset_parameters"):
                module.reset_parameters()
        with Explainer(randomised) as explainer:
            _, maps = explainer.explain(batch, classes)  # the same class as the trained model's map
        rhos.append(np.nanmedian([spearmanr(a.heatmap.ravel(), b.heatmap.ravel()).statistic
                                  for a, b in zip(trained, maps)]))
        random_on_key.append(on_key(maps))
    print(f"\ntrained on key {on_key(trained):.2f}; random on key {np.mean(random_on_key):.2f}; "
          f"median Spearman per seed {np.round(rhos, 3)}")
    assert on_key(trained) >= 0.85
    assert np.mean(rhos) < 0.5
    assert np.mean(random_on_key) <= on_key(trained) - 0.2


def test_report_gallery_shows_where_the_model_looks(marked, tmp_path):
    import re

    from report_fakes import fake_run
    from tlearn.report import build_report

    run, _ = marked
    html = build_report(run)
    section = html[html.index('<section id="heatmaps">'):]
    section = section[:section.index("</section>")]
    assert "Confidently wrong" in section and "Correct, most confident per class" in section
    cards = section.count('<figure class="hm-card">')
    assert 2 + 2 <= cards <= 24  # the two mislabelled images, then up to 2 correct per class
    srcs = re.findall(r'<img[^>]* src="([^"]+)"', section)
    assert len(srcs) >= 2 * cards and all(s.startswith("data:image/jpeg;base64,") for s in srcs)
    assert 'href="#heatmaps"' in html
    assert 'id="heatmaps"' not in build_report(run, heatmaps=0)
    # a run whose model cannot be loaded still gets its report, with the reason
    fake = fake_run(tmp_path / "fake", ["a", "b"], {"val": [(tmp_path / "x.png", 0), (tmp_path / "y.png", 1)]},
                    skill=-5)
    assert "Heatmaps are not available" in build_report(fake)


def test_report_without_grad_cam_says_how_to_get_heatmaps(marked, monkeypatch, caplog):
    import importlib.util

    from tlearn.report import build_report

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "pytorch_grad_cam" else real(name, *a))
    run, _ = marked
    html = build_report(run)
    assert "pip install &#39;tlearn[explain]&#39;" in html or "pip install 'tlearn[explain]'" in html
    assert not [r for r in caplog.records if r.levelname == "WARNING"]


def test_report_gallery_in_chromium(marked, tmp_path):
    """The gallery renders (every image loads, no console error); screenshots in artifacts/."""
    pytest.importorskip("selenium")
    from selenium.webdriver.common.by import By

    from test_report_browser import ARTIFACTS, _chromium, check_page
    from tlearn.report import write_report

    run, _ = marked
    driver = _chromium()
    try:
        check_page(driver, write_report(run, tmp_path / "report.html"), ["heatmaps", "errors"],
                   "report-browser-heatmaps.png")
        gallery = driver.find_element(By.ID, "heatmaps")
        driver.execute_script("arguments[0].scrollIntoView();", gallery)
        shot = ARTIFACTS / "report-heatmap-gallery.png"
        gallery.screenshot(str(shot))
        print(f"\nscreenshot: {shot}")
        assert shot.stat().st_size > 10_000
    finally:
        driver.quit()


def test_serve_explain_draws_one_heatmap_at_a_time(marked):
    from tlearn.runtime import ImageError
    from tlearn.serve.explain import ExplainService

    run, where = marked
    service = ExplainService(run, max_pixels=10_000_000)
    path = sorted(where)[0]
    body = service.explain("key.png", open(path, "rb").read())
    assert body["label"] in ("red", "green") and body["layer"] == "top.2"
    assert body["heatmap"].startswith("data:image/png;base64,")
    with pytest.raises(ImageError):
        service.explain("notes.txt", b"plain words")
    with service.lock:  # another heatmap in progress: the caller answers 503
        assert service.explain("key.png", open(path, "rb").read()) is None


def _gallery_section(html: str) -> str:
    """The gallery's cards (not its notes and timing)."""
    section = html[html.index('<section id="heatmaps">'):]
    return section[section.index("<h3>"):section.index("</section>")]


def test_report_heatmaps_are_reused_for_the_same_model_and_drawn_again_for_another(marked, tmp_path, monkeypatch,
                                                                                    caplog):
    import logging

    import yaml
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    import tlearn.report.heatmaps as heatmaps
    from tlearn.report import build_report

    run = tmp_path / "run"
    shutil.copytree(marked[0], run)
    first = _gallery_section(build_report(run))
    drawn: list[int] = []
    real = heatmaps._draw_new

    def counted(run_, picks, todo, *args):
        drawn.append(len(todo))
        return real(run_, picks, todo, *args)

    monkeypatch.setattr(heatmaps, "_draw_new", counted)
    html = build_report(run)
    assert _gallery_section(html) == first and drawn == []  # every card from the cache
    cards = first.count('<figure class="hm-card">')
    assert f"Heatmaps of {cards} of {cards} images reused from the cache" in html
    # one damaged card: a warning, that card drawn again, the gallery unchanged
    cache = Path(yaml.safe_load((run / "config.yaml").read_text())["fit"]["cache_dir"])
    entries = sorted((cache / "heatmaps").glob("*.npz"))
    assert len(entries) >= cards
    entries[0].write_bytes(b"garbage")
    with caplog.at_level(logging.WARNING, logger="tlearn"):
        assert _gallery_section(build_report(run)) == first and drawn == [1]
    assert any("heatmaps cache entry" in r.getMessage() for r in caplog.records)
    # other weights: every card drawn again
    state = load_file(run / "model.safetensors")
    name = next(k for k, v in state.items() if v.is_floating_point() and v.numel() > 1)
    state[name] = state[name] * 1.5
    with safe_open(str(run / "model.safetensors"), "pt") as f:
        metadata = f.metadata()
    save_file(state, str(run / "model.safetensors"), metadata=metadata)
    build_report(run)
    assert drawn[-1] == cards
