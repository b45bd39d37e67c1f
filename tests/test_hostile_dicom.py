"""Hostile DICOM files (tests/hostile_dicom.py makes them): deflate bombs, compressed frames whose codestream claims
20000x20000 under a 64x64 header, an RLE segment that expands 64 times, and malformed grey-value attributes. Each
is refused with its reason, in bounded memory, wherever DICOM is read: the runtime, fit, predict, doctor and the
HTTP server (4xx, never 500); the valid files beside them are still used."""
from __future__ import annotations

import csv
import importlib.util
import io
import json
import os
import shutil
import subprocess
import sys
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("pydicom")

import hostile_dicom as corpus  # noqa: E402
from conftest import shared_dataset, write_class_tree  # noqa: E402
from tlearn.data.images import UnreadableImage, load_rgb  # noqa: E402
from tlearn.runtime import ImageError, decode_image, image_size  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
BOMB_BYTES = 256 << 20  # each deflate bomb inflates to this (1 MiB of zeros on disk per GiB)
PEAK_BOUND_MB = 40  # Python allocations while one hostile file is refused (the header limit is 16 MiB)

_spec = importlib.util.spec_from_file_location("serve_hostile", REPO / "benchmarks" / "serve_hostile.py")
bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    return corpus.write_corpus(tmp_path_factory.mktemp("hostile_dicom"), bomb_bytes=BOMB_BYTES)


def test_the_hostile_files_are_small(files):
    for name in corpus.HOSTILE:
        assert files[name].stat().st_size < 400_000, name


@pytest.mark.parametrize("name", sorted(corpus.HOSTILE))
def test_each_hostile_file_is_refused_with_its_reason_in_bounded_memory(files, name):
    tracemalloc.start()
    try:
        with pytest.raises(UnreadableImage) as exc:
            load_rgb(files[name])
        peak_mb = tracemalloc.get_traced_memory()[1] / 2**20
    finally:
        tracemalloc.stop()
    assert corpus.HOSTILE[name][1] in str(exc.value), str(exc.value)
    assert peak_mb < PEAK_BOUND_MB, (name, peak_mb)
    with pytest.raises(ImageError) as err:  # the same from the bytes, as served
        decode_image(files[name].read_bytes())
    assert err.value.kind in ("too_large", "corrupt")


def test_size_probing_reads_only_the_header(files):
    assert image_size(files["deflate_bomb.dcm"].read_bytes()) == (64, 64)  # its bomb is in the pixel data
    assert image_size(files["j2k_mismatch.dcm"]) == (64, 64)
    with pytest.raises(ImageError, match="decompression bomb") as exc:  # its bomb is before the pixel data
        image_size(files["deflate_header_bomb.dcm"].read_bytes())
    assert exc.value.kind == "too_large"


def test_a_valid_deflated_file_decodes_like_its_uncompressed_twin(files):
    plain = np.asarray(load_rgb(files["valid.dcm"]))
    assert plain.shape == (64, 64, 3) and plain.std() > 20
    assert np.array_equal(np.asarray(load_rgb(files["valid_deflated.dcm"])), plain)


def test_real_compressed_samples_pass_the_codestream_check():
    """The check reads every JPEG, JPEG-LS, JPEG 2000 and RLE sample's codestream, and each agrees with its header."""
    from tlearn import runtime_codestream, runtime_dicom

    root = shared_dataset("dicom_samples")
    with open(root / "files.csv", newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["compressed"] == "True"]
    checked = 0
    for row in rows:
        path = root / row["path"]
        frames = int(row["frames"])
        frame = runtime_dicom._frame_bytes(path, frames // 2 if frames > 1 else 0, frames)
        if row["transfer_syntax_uid"] == "1.2.840.10008.1.2.5":
            samples, bits = int(row["samples_per_pixel"]), int(row["bits_allocated"])
            runtime_codestream.rle_segments(frame, samples * bits // 8, int(row["rows"]) * int(row["cols"]))
        else:
            assert runtime_codestream.codestream_size(frame) == (int(row["cols"]), int(row["rows"])), row["path"]
        checked += 1
    assert checked >= 25


# --- fit, predict and doctor: skipped and listed, the command goes on ---

@pytest.fixture(scope="module")
def data_tree(tmp_path_factory, files) -> Path:
    root = write_class_tree(tmp_path_factory.mktemp("data") / "d", {"red": 8, "blue": 8}, size=32)
    for name in [*corpus.HOSTILE, *corpus.VALID]:
        shutil.copy(files[name], root / "red" / name)
    return root


@pytest.fixture(scope="module")
def run_dir(data_tree, tmp_path_factory) -> Path:
    from tlearn import fit

    out = tmp_path_factory.mktemp("runs") / "run"
    fit(data_tree, out, backbone="compact_cnn", weights="none", image_size=32, num_workers=0, progress=False, seed=1)
    return out


def test_fit_skips_and_lists_each_hostile_file_with_its_reason(run_dir):
    metrics = json.loads((run_dir / "metrics.json").read_text())
    skipped = {Path(s["path"]).name: s["reason"] for s in metrics["skipped"]}
    assert set(skipped) == set(corpus.HOSTILE), skipped
    for name, (_, words) in corpus.HOSTILE.items():
        assert words in skipped[name], (name, skipped[name])


def test_predict_lists_the_hostile_files_and_predicts_the_valid_ones(run_dir, data_tree):
    red = data_tree / "red"
    names = sorted([*corpus.HOSTILE, *corpus.VALID])
    proc = subprocess.run([sys.executable, "-m", "tlearn", "predict", str(run_dir), *[str(red / n) for n in names]],
                          capture_output=True, text=True, timeout=300, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert sorted(Path(row[0]).name for row in list(csv.reader(io.StringIO(proc.stdout)))[1:]) == sorted(corpus.VALID)
    assert "Traceback" not in proc.stderr
    for name, (_, words) in corpus.HOSTILE.items():
        line = next(line for line in proc.stderr.splitlines() if name in line)
        assert line.startswith("skipped") and words in line, line


def test_doctor_lists_each_hostile_file_with_its_reason(data_tree, tmp_path):
    from tlearn.doctor import diagnose

    report = diagnose(data_tree, cache_dir=str(tmp_path / "cache"), backbone="compact_cnn", weights="none",
                      image_size=32, progress=False)
    skipped = {Path(s["path"]).name: s["reason"] for s in report.skipped}
    for name, (_, words) in corpus.HOSTILE.items():
        assert words in skipped.get(name, ""), (name, skipped.get(name))
    assert not set(corpus.VALID) & set(skipped)


# --- the HTTP server: 4xx with the reason in the log, valid uploads still answered ---

@pytest.fixture(scope="module")
def server(tmp_path_factory):
    model = bench.tiny_onnx(tmp_path_factory.mktemp("model") / "tiny.onnx")
    srv = bench.ServerProcess(model, "--decode-threads", "2", log_path=tmp_path_factory.mktemp("log") / "s.log")
    yield srv
    srv.stop()


def test_serve_answers_4xx_for_each_hostile_file_and_200_beside_them(server, files):
    from tlearn.serve.app import IMAGE_DETAIL

    ids = {}
    for name in corpus.HOSTILE:
        status, raw = bench.post(server.port, files[name].read_bytes())
        out = json.loads(raw)
        assert status == 400 and out["error"] in ("too_large", "corrupt"), (name, status, out)
        assert out["detail"] == IMAGE_DETAIL[out["error"]]
        ids[out["request_id"]] = name
    for name in corpus.VALID:
        status, raw = bench.post(server.port, files[name].read_bytes())
        assert status == 200, (name, raw)
    log = server.log()
    for rid, name in ids.items():  # the reason is in the server's log under the request id
        line = next(line for line in log.splitlines() if rid in line)
        assert corpus.HOSTILE[name][1] in line, line
    health = json.loads(bench.get(server.port, "/health")[1])
    assert health["server_errors"] == 0 and health["client_errors"] == len(corpus.HOSTILE)
