"""`tlearn cache`: what each cache kind holds, and removing only what tlearn wrote (never through links)."""
from __future__ import annotations

import json
import os
import sqlite3
import time

import numpy as np
import pytest

from tlearn import caches
from tlearn.cli import main

KEY_A, KEY_B, KEY_C = "a" * 24, "b" * 24, "c" * 24
DAY = 86400


def _age(path, days: float) -> None:
    t = time.time() - days * DAY
    os.utime(path, (t, t), follow_symlinks=False)


def fake_cache(root):
    """A cache folder as tlearn writes it, with ages, plus things tlearn never writes there."""
    features = root / "features"
    features.mkdir(parents=True)
    for key, days in ((KEY_A, 30), (KEY_B, 1)):
        db = sqlite3.connect(features / f"{key}.sqlite")
        db.execute("CREATE TABLE features (file_sha256 TEXT PRIMARY KEY, dim INT, data BLOB)")
        db.execute("INSERT INTO features VALUES ('x', 4, ?)", (b"\0" * 4000,))
        db.commit()
        db.close()
        _age(features / f"{key}.sqlite", days)
    (features / f"{KEY_A}.sqlite-wal").write_bytes(b"w" * 100)
    _age(features / f"{KEY_A}.sqlite-wal", 30)
    decoded = root / "decoded"
    decoded.mkdir()
    np.save(decoded / f"{KEY_C}.npy", np.zeros((2, 8, 8, 3), np.uint8))
    (decoded / f"{KEY_C}.json").write_text('{"rows": [0, 1], "skipped": [], "size": 8}')
    for p in decoded.iterdir():
        _age(p, 10)
    (decoded / f".{KEY_A}.x1y2.npy").write_bytes(b"\0" * 50)  # a write in progress, just now
    (decoded / f".{KEY_B}.old.npy").write_bytes(b"\0" * 60)  # one a crash left behind two days ago
    _age(decoded / f".{KEY_B}.old.npy", 2)
    (root / "leakage").mkdir()
    (root / "leakage" / "thumbs-32-v1.sqlite").write_bytes(b"s" * 300)
    _age(root / "leakage" / "thumbs-32-v1.sqlite", 5)
    tree = root / "demo" / "lfw-faces-3-2-2-seed0"
    (tree / "train" / "face").mkdir(parents=True)
    (tree / "train" / "face" / "train_1.png").write_bytes(b"p" * 70)
    (tree / ".complete").write_text("demo\n")
    # not tlearn's: a user's file at the top, a stray file among features, a link out of the cache
    (root / "notes.txt").write_text("mine")
    (features / "mine.db").write_bytes(b"u" * 10)
    outside = root.parent / "outside"
    outside.mkdir()
    (outside / "precious.npy").write_bytes(b"keep" * 100)
    (decoded / f"{'d' * 24}.npy").symlink_to(outside / "precious.npy")
    (root / "demo" / "lfw-faces-9-9-9-seed1").symlink_to(outside, target_is_directory=True)
    return outside


def test_scan_groups_entries_by_kind_and_lists_what_tlearn_did_not_write(tmp_path):
    root = tmp_path / "cache"
    fake_cache(root)
    state = caches.scan(root)
    features = {e.name: e for e in state.of_kind("features")}
    assert sorted(features) == [f"{KEY_A}.sqlite", f"{KEY_B}.sqlite"]
    assert len(features[f"{KEY_A}.sqlite"].paths) == 2  # the database and its -wal are one entry
    assert features[f"{KEY_A}.sqlite"].bytes == os.path.getsize(root / "features" / f"{KEY_A}.sqlite") + 100
    decoded = {(e.name, e.in_progress): e for e in state.of_kind("decoded")}
    assert set(decoded) == {(KEY_C, False), (KEY_A, True), (KEY_B, True)}
    assert len(decoded[(KEY_C, False)].paths) == 2
    assert [e.name for e in state.of_kind("leakage")] == ["thumbs-32-v1.sqlite"]
    assert [e.name for e in state.of_kind("demo")] == ["lfw-faces-3-2-2-seed0"]
    unknown = {u.path.name: u.why for u in state.unknown}
    assert set(unknown) == {"notes.txt", "mine.db", f"{'d' * 24}.npy", "lfw-faces-9-9-9-seed1"}
    assert "symbolic link" in unknown[f"{'d' * 24}.npy"] and "symbolic link" in unknown["lfw-faces-9-9-9-seed1"]
    summary = state.to_dict()
    assert summary["kinds"]["features"]["entries"] == 2
    assert summary["kinds"]["features"]["oldest"][0]["name"] == f"{KEY_A}.sqlite"  # 30 days before 1 day
    assert summary["bytes"] == sum(e.bytes for e in state.entries)


def test_clear_one_kind_then_all_leaves_unknown_files_links_and_recent_partial_writes(tmp_path):
    root = tmp_path / "cache"
    outside = fake_cache(root)
    state = caches.scan(root)
    caches.remove(caches.to_clear(state, "features"), root)
    assert sorted(p.name for p in (root / "features").iterdir()) == ["mine.db"]
    assert (root / "decoded" / f"{KEY_C}.npy").is_file()  # other kinds untouched
    caches.remove(caches.to_clear(caches.scan(root)), root)
    left = sorted(str(p.relative_to(root)) for p in root.rglob("*"))
    assert left == sorted(["decoded", f"decoded/.{KEY_A}.x1y2.npy", f"decoded/{'d' * 24}.npy", "demo",
                           "demo/lfw-faces-9-9-9-seed1", "features", "features/mine.db", "leakage", "notes.txt"])
    assert (outside / "precious.npy").read_bytes() == b"keep" * 100  # nothing followed a link out


def test_max_size_removes_least_recently_used_entries_first(tmp_path):
    root = tmp_path / "cache"
    fake_cache(root)
    state = caches.scan(root)
    by_age = sorted((e for e in state.entries if not e.in_progress or e.name == KEY_B), key=lambda e: e.last_used)
    oldest = by_age[0]
    assert oldest.name == f"{KEY_A}.sqlite"
    chosen = caches.to_shrink(state, state.bytes - 1)
    assert [e.name for e in chosen] == [oldest.name]  # one entry is enough to get under the limit
    chosen = caches.to_shrink(state, 0)
    assert {e.name for e in chosen} == {e.name for e in state.entries} - {KEY_A}  # all but the fresh partial write
    assert caches.to_shrink(state, state.bytes) == []
    with pytest.raises(caches.TlearnError, match="--max-size"):
        caches.to_shrink(state, -1)


def test_remove_refuses_paths_outside_the_kind_folder(tmp_path):
    entry = caches.Entry("features", "x", [tmp_path / "elsewhere" / "x.sqlite"], 1, 0.0)
    with pytest.raises(caches.TlearnError, match="refusing to remove"):
        caches.remove([entry], tmp_path / "cache")


def test_a_demo_tree_with_foreign_files_is_left_alone(tmp_path):
    root = tmp_path / "cache"
    tree = root / "demo" / "digits-60-30-30-seed0"
    (tree / "train" / "0").mkdir(parents=True)
    (tree / ".complete").write_text("x")
    (tree / "train" / "0" / "notes.docx").write_text("a user's")
    state = caches.scan(root)
    assert state.of_kind("demo") == [] and "notes.docx" in state.unknown[0].why


def test_cli_shows_clears_and_caps_with_json_and_dry_run(tmp_path, capsys):
    root = tmp_path / "cache"
    fake_cache(root)
    assert main(["cache", "--cache-dir", str(root)]) == 0
    text = capsys.readouterr().out
    assert f"cache folder: {root}" in text and "features" in text and "2 entries" in text
    assert "left alone" in text and "notes.txt" in text

    assert main(["cache", "--cache-dir", str(root), "--max-size", "0", "--dry-run", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["dry_run"] and len(out["removed"]) == 6 and (root / "features" / f"{KEY_A}.sqlite").exists()

    assert main(["cache", "--cache-dir", str(root), "--clear", "decoded", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert {e["name"] for e in out["removed"]} == {KEY_C, KEY_B}
    assert out["kinds"]["decoded"]["entries"] == 1 and out["kinds"]["features"]["entries"] == 2

    assert main(["cache", "--cache-dir", str(root), "--clear"]) == 0
    assert "removed 4 entries" in capsys.readouterr().out
    assert main(["cache", "--cache-dir", str(root), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["bytes"] == 50 and out["kinds"]["decoded"]["in_progress"] == 1


def test_cli_errors(tmp_path, capsys):
    assert main(["cache", "--cache-dir", str(tmp_path), "--clear", "--max-size", "1"]) == 2
    assert "not both" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["cache", "--clear", "weights"])
    with pytest.raises(SystemExit):
        main(["cache", "--max-size", "-3"])


def test_missing_cache_folder_and_the_environment_default(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TLEARN_CACHE", str(tmp_path / "nothing-yet"))
    assert caches.default_cache_dir() == tmp_path / "nothing-yet"
    assert main(["cache"]) == 0
    assert "does not exist yet" in capsys.readouterr().out
    (tmp_path / "a-file").write_text("x")
    assert main(["cache", "--cache-dir", str(tmp_path / "a-file")]) == 2
    assert "is a file, not a folder" in capsys.readouterr().err


def test_the_result_caches_are_listed_and_cleared(tmp_path):
    from tlearn.result_cache import save_result

    root = tmp_path / "cache"
    for kind in ("probe", "heatmaps", "leakage"):
        save_result(root, kind, "0123456789abcdef" * 2, {"x": 1})
    save_result(root, "facts", "ab" * 12, {"x": 1})  # data facts' keys are 24 hex digits
    (root / "facts" / "notes.txt").write_text("mine")
    state = caches.scan(root)
    assert sorted(e.kind for e in state.entries) == ["facts", "heatmaps", "leakage", "probe"]
    assert [u.path.name for u in state.unknown] == ["notes.txt"]
    for entry in caches.to_clear(state, "probe"):
        assert entry.kind == "probe"
    assert {e.kind for e in caches.to_clear(state)} == {"facts", "heatmaps", "leakage", "probe"}
