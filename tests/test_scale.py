"""What keeps the cost per image flat at 100k images: the neighbour search without all pairs (near copies, the
doctor's feature duplicates and outliers), and the probe's choices made on a stratified sample of a large set."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from sklearn.linear_model import LogisticRegression

from tlearn.data import leakage
from tlearn.data.leakage import NEAR_BITS, closest_copies, is_near, phash, standardized, thumbnail
from tlearn.data.neighbours import nearest
from tlearn.doctor import labels as doctor_labels
from tlearn.data.duplicates import _best_by_features
from tlearn.strategies.linear_probe import LinearProbe, stratified_sample

from conftest import shared_dataset


@pytest.fixture(scope="module")
def photo_thumbs():
    """Thumbnails of the flower photos (train, val, test) and of 60 planted copies of them (resized to half,
    JPEG q70), as the leakage check computes them: (pool thumbs, copy thumbs, planted)."""
    root = shared_dataset("flower_photos")
    paths = sorted(p for split in ("train", "val", "test") for p in (root / split).rglob("*.jpg"))
    pool = np.stack([thumbnail(leakage.load_rgb(p, draft_size=64)) for p in paths])
    rng = np.random.default_rng(0)
    planted = rng.choice(len(paths), 60, replace=False)
    copies = []
    for k in planted:
        img = leakage.load_rgb(paths[k])
        img = img.resize((img.width // 2, img.height // 2), Image.Resampling.BILINEAR)
        from io import BytesIO
        buf = BytesIO()
        img.save(buf, "JPEG", quality=70)
        copies.append(thumbnail(Image.open(BytesIO(buf.getvalue())).convert("RGB")))
    return pool, np.stack(copies), planted


def _near_pairs(q_thumbs, p_thumbs, exact_up_to, exclude=None):
    out = closest_copies(phash(q_thumbs), standardized(q_thumbs), phash(p_thumbs), standardized(p_thumbs),
                         NEAR_BITS, exclude=exclude, exact_up_to=exact_up_to)
    return {(q, int(i)) for q, (i, c, d, g) in enumerate(zip(*out)) if i >= 0 and is_near(float(c), int(d), float(g))}


def test_candidate_search_finds_the_same_near_copies_as_every_pair(photo_thumbs):
    pool, copies, planted = photo_thumbs
    brute = _near_pairs(copies, pool, exact_up_to=10 ** 9)
    fast = _near_pairs(copies, pool, exact_up_to=100)  # forces the inverted file
    assert fast == brute
    assert len(brute) >= 55  # the planted copies are found (a copy of a copy's twin counts too)
    assert sum((q, int(planted[q])) in brute for q in range(len(planted))) >= 55


def test_candidate_search_within_one_set_matches_every_pair(photo_thumbs):
    pool, copies, _ = photo_thumbs
    both = np.concatenate([pool, copies])
    exclude = np.arange(len(both))
    assert _near_pairs(both, both, 100, exclude) == _near_pairs(both, both, 10 ** 9, exclude)


def test_inverted_file_finds_the_true_neighbours_of_real_images(photo_thumbs):
    pool, copies, _ = photo_thumbs
    vectors = standardized(np.concatenate([pool, copies]))
    exclude = np.arange(len(vectors))
    exact_i, exact_s = nearest(vectors, vectors, 2, exclude, exact_up_to=10 ** 9)
    fast_i, fast_s = nearest(vectors, vectors, 2, exclude, exact_up_to=100, cell_size=20)
    same = fast_i[:, 0] == exact_i[:, 0]
    assert same.mean() >= 0.9  # the closest other image of every image, copies or not
    assert same[exact_s[:, 0] >= 0.97].all()  # and of every near copy
    assert np.allclose(fast_s[same, 0], exact_s[same, 0], atol=1e-5)
    assert (fast_s <= exact_s + 1e-5).all()  # never better than the truth: scored with the full vectors


def test_best_by_features_is_the_most_similar_other_row():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(300, 16)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    best, sim = _best_by_features(x)
    s = x @ x.T
    np.fill_diagonal(s, -2)
    assert (best == s.argmax(1)).all() and np.allclose(sim, s.max(1), atol=1e-6)


def test_outlier_scores_from_the_neighbour_graph_equal_scikit_learns(monkeypatch):
    rng = np.random.default_rng(2)
    centre = np.eye(3, 12) * 6  # two classes around two directions, five images towards a third
    x = np.concatenate([rng.normal(size=(400, 12)) + centre[0], rng.normal(size=(400, 12)) + centre[1],
                        rng.normal(size=(5, 12)) + centre[2]])
    y = np.array([0] * 400 + [1] * 405)
    dense = doctor_labels.outlier_scores(x, y)
    monkeypatch.setattr(doctor_labels, "EXACT_UP_TO", 100)  # the graph path (its neighbours exact below 5000)
    graph = doctor_labels.outlier_scores(x, y)
    assert np.allclose(graph, dense, atol=1e-3)
    assert set(np.argsort(-graph)[:5]) == set(range(800, 805))


def _blobs(n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    y = rng.choice(3, n, p=[0.6, 0.3, 0.1])
    X = rng.normal(size=(n, 20)) + 1.5 * np.eye(3, 20)[y]
    return X, y


def test_stratified_sample_keeps_class_shares_and_small_classes():
    y = np.array([0] * 900 + [1] * 97 + [2] * 3)
    rows = stratified_sample(y, 100, seed=0, at_least=5)
    assert np.bincount(y[rows]).tolist() == [90, 10, 3]
    assert stratified_sample(y, 1000, 0, 5) is None


def test_probe_chooses_on_a_sample_only_above_the_threshold_and_records_it():
    X, y = _blobs(1200)
    whole = LinearProbe(cv_sample=None).fit(X, y, 3)
    above = LinearProbe(cv_sample=5000).fit(X, y, 3)
    assert whole.cv_rows_ == above.cv_rows_ == 1200
    assert np.array_equal(whole.model_.coef_, above.model_.coef_)
    sampled = LinearProbe(cv_sample=300).fit(X, y, 3)
    assert 295 <= sampled.cv_rows_ <= 305
    # the chosen model is then fitted on all rows: nearer their optimum than the sample's own optimum is
    Xt = sampled.treatment_.transform(X)
    optimum = LogisticRegression(C=sampled.C_, tol=1e-10, max_iter=10000).fit(Xt, y).coef_
    rows = stratified_sample(y, 300, 0, 5)
    on_sample = LogisticRegression(C=sampled.C_, tol=1e-10, max_iter=10000).fit(Xt[rows], y[rows]).coef_
    assert np.abs(sampled.model_.coef_ - optimum).max() < 0.5 * np.abs(on_sample - optimum).max()
    assert (sampled.predict(X) == y).mean() >= (whole.predict(X) == y).mean() - 0.02


def test_doctor_label_probe_chooses_C_on_a_sample_above_the_threshold():
    X, y = _blobs(900)
    probs, info = doctor_labels.out_of_sample_probabilities(X, y, 3, cv_sample=300)
    assert 295 <= info["C_chosen_on"] <= 305 and not np.isnan(probs).any()
    full, info_full = doctor_labels.out_of_sample_probabilities(X, y, 3, cv_sample=None)
    assert info_full["C_chosen_on"] == 900
    assert abs((probs.argmax(1) == y).mean() - (full.argmax(1) == y).mean()) <= 0.02
