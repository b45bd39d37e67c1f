"""Hostile inputs (issue 17, items 1, 6, 7): tiny files that decode to huge images, formats Pillow should not
open, uploads that stall, requests from other origins, manifest paths out of the data folder.

Each hostile image is refused cheaply or processed in bounded memory, in every place that decodes: the runtime,
tlearn's own decoding (fit, predict, the training cache) and the HTTP server (a 4xx with a request id, never a
500 or an exception's text). The images are built in memory: a 177-byte 100000x1 PNG, a forged 39M x 1 header,
a ~70 KB 16-bit 6000x6000 PNG of zeros.
"""
from __future__ import annotations

import csv
import http.client
import importlib.util
import io
import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from torchvision.transforms import v2 as T
from torchvision.transforms.functional import InterpolationMode

from conftest import write_class_tree
from tlearn.data.decoded_cache import decode_images
from tlearn.data.images import UnreadableImage, load_rgb
from tlearn.data.layout import Sample, load_splits
from tlearn.data.transforms import DataConfig, resize_crop
from tlearn.errors import DataError
from tlearn.runtime import MAX_ASPECT_RATIO, Classifier, ImageError, Preprocess, decode_image
from tlearn.serve.app import IMAGE_DETAIL

_spec = importlib.util.spec_from_file_location(
    "serve_hostile", Path(__file__).resolve().parents[1] / "benchmarks" / "serve_hostile.py")
bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)

REPO = Path(__file__).resolve().parents[1]
PEAK_GROWTH_BOUND_MB = 500  # server peak RSS growth, 2 decode threads, while 8 hostile images are posted at once


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    """The hostile files on disk (and one ordinary image), built once."""
    folder = tmp_path_factory.mktemp("hostile")
    made = {"thin.png": bench.thin_png(), "forged.png": bench.forged_png(39_000_000, 1),
            "deep16.png": bench.deep16_png(), "figure.eps": bench.eps_bytes()}
    for name, data in made.items():
        (folder / name).write_bytes(data)
    Image.new("RGB", (60, 40), (200, 30, 30)).save(folder / "ok.png")
    return {name: folder / name for name in [*made, "ok.png"]}


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    return bench.tiny_onnx(tmp_path_factory.mktemp("model") / "tiny.onnx")


# --- decoding: the runtime and tlearn's own ---

def test_the_hostile_files_are_as_small_as_claimed(files):
    assert files["thin.png"].stat().st_size < 300 and files["forged.png"].stat().st_size < 100
    assert files["deep16.png"].stat().st_size < 150_000
    with Image.open(files["deep16.png"]) as img:
        assert img.size == (6000, 6000) and img.mode.startswith("I")
    with Image.open(files["forged.png"]) as img:
        assert img.size == (39_000_000, 1)


@pytest.mark.parametrize("name", ["thin.png", "forged.png"])
def test_thin_strips_are_refused_from_the_header(files, name):
    for source in (files[name], files[name].read_bytes()):
        with pytest.raises(ImageError) as exc:
            decode_image(source, draft_size=256)
        assert exc.value.kind == "too_large" and "thin" in str(exc.value)
    with pytest.raises(UnreadableImage, match="too thin"):
        load_rgb(files[name], draft_size=256)


def test_a_thin_image_within_the_limit_is_resized_only_under_the_crop():
    # 20000x200 (aspect 100): resizing the short side to 256 would make a 25600x256 image; the crop's source
    # box is resampled instead, giving what the full resize would (within one grey level of rounding)
    rng = np.random.default_rng(0)
    row = np.repeat(rng.integers(0, 256, (1, 200, 3)), 100, axis=1).astype(np.uint8)  # smooth along the strip
    img = Image.fromarray(np.repeat(row, 200, axis=0).transpose(1, 0, 2).copy())  # 200 wide, 20000 tall
    assert max(img.size) == MAX_ASPECT_RATIO * min(img.size)
    cfg = DataConfig(input_size=224, crop_pct=0.875, interpolation="bicubic")
    full = T.Compose([T.Resize(cfg.resize_size, interpolation=InterpolationMode.BICUBIC, antialias=True),
                      T.CenterCrop(cfg.input_size)])
    ours, runtime = np.asarray(resize_crop(cfg)(img)), Preprocess(224, 0.875, "bicubic").to_array(img)
    assert np.array_equal(ours, runtime)  # tlearn and the exported model's runtime agree pixel for pixel
    assert ours.shape == (224, 224, 3)
    assert np.abs(ours.astype(int) - np.asarray(full(img)).astype(int)).max() <= 1


def test_16bit_giant_decodes_in_bounded_memory(files):
    # in a fresh process without torch: peak RSS growth of decode + crop (1.2 GB through float64 before)
    code = (
        "import sys\n"
        "from tlearn.runtime import Preprocess, decode_image\n"
        "def hwm():\n"
        "    return int([l for l in open('/proc/self/status') if l.startswith('VmHWM')][0].split()[1]) // 1024\n"
        "before = hwm()\n"
        "p = Preprocess(224)\n"
        f"arr = p.to_array(decode_image({str(files['deep16.png'])!r}, draft_size=p.resize_size))\n"
        "print(arr.shape, hwm() - before, 'torch' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "PYTHONPATH": str(REPO)}, check=True).stdout.split()
    assert out[:3] == ["(224,", "224,", "3)"] and out[4] == "False"
    assert int(out[3]) < 200, f"decoding a 6000x6000 16-bit PNG grew peak RSS by {out[3]} MB"


def test_16bit_giant_is_the_same_through_tlearn_and_the_runtime(files):
    cfg = DataConfig(input_size=64, crop_pct=0.875)
    ours = np.asarray(resize_crop(cfg)(load_rgb(files["deep16.png"], draft_size=cfg.resize_size)))
    theirs = Preprocess(64).to_array(decode_image(files["deep16.png"], draft_size=cfg.resize_size))
    assert np.array_equal(ours, theirs) and ours.shape == (64, 64, 3)


def test_eps_is_not_opened(files):
    with Image.open(files["figure.eps"]) as img:  # Pillow alone would take it (and run Ghostscript to load it)
        assert img.format == "EPS"
    with pytest.raises(ImageError) as exc:
        decode_image(files["figure.eps"].read_bytes())
    assert exc.value.kind == "not_image"
    with pytest.raises(UnreadableImage, match="not an image"):
        load_rgb(files["figure.eps"])


# --- fit, the training cache and predict: skipped and listed, never a crash ---

@pytest.fixture(scope="module")
def hostile_tree(tmp_path_factory, files) -> Path:
    root = write_class_tree(tmp_path_factory.mktemp("data") / "d", {"red": 8, "blue": 8}, size=32)
    for name in ("thin.png", "forged.png", "deep16.png"):
        (root / "red" / name).write_bytes(files[name].read_bytes())
    return root


@pytest.fixture(scope="module")
def hostile_run(hostile_tree, tmp_path_factory) -> Path:
    from tlearn import fit

    out = tmp_path_factory.mktemp("runs") / "run"
    fit(hostile_tree, out, image_size=32, num_workers=0, progress=False, seed=1)
    return out


def test_fit_skips_and_lists_the_hostile_files(hostile_run, hostile_tree):
    metrics = json.loads((hostile_run / "metrics.json").read_text())
    skipped = {Path(s["path"]).name: s["reason"] for s in metrics["skipped"]}
    assert "too thin" in skipped["thin.png"] and "too thin" in skipped["forged.png"]
    assert "deep16.png" not in skipped  # a valid image, decoded cheaply
    assert metrics["val"]["n"] + len(skipped) <= 19


def test_training_cache_skips_and_lists_the_hostile_files(hostile_tree, tmp_path):
    samples = [Sample(hostile_tree / "red" / n, 0) for n in ("thin.png", "forged.png", "deep16.png", "red_0.png")]
    decoded = decode_images(samples, DataConfig(input_size=32), tmp_path / "cache")
    assert [s.path.name for s in decoded.samples] == ["deep16.png", "red_0.png"]
    assert {Path(s.path).name for s in decoded.skipped} == {"thin.png", "forged.png"}
    assert all("too thin" in s.reason for s in decoded.skipped)


def test_predict_python_api_and_cli(hostile_run, hostile_tree):
    from tlearn.runs.run import Run

    red = hostile_tree / "red"
    predictions, skipped = Run(hostile_run).predict([red / "thin.png", red / "forged.png", red / "deep16.png"])
    assert [Path(p.path).name for p in predictions] == ["deep16.png"]
    assert sorted(Path(s.path).name for s in skipped) == ["forged.png", "thin.png"]
    proc = subprocess.run([sys.executable, "-m", "tlearn", "predict", str(hostile_run), str(red / "thin.png"),
                           str(red / "forged.png"), str(red / "deep16.png")], capture_output=True, text=True,
                          timeout=300, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert [Path(row[0]).name for row in csv.reader(io.StringIO(proc.stdout))][1:] == ["deep16.png"]
    assert "skipped" in proc.stderr and "thin.png" in proc.stderr and "forged.png" in proc.stderr
    assert "Traceback" not in proc.stderr


# --- the runtime on its own ---

def test_runtime_classifier_and_cli(tiny_model, files):
    clf = Classifier(tiny_model)
    assert clf.predict_files([files["deep16.png"]])[0].label in ("dark", "light")
    for name in ("thin.png", "forged.png"):
        with pytest.raises(ImageError) as exc:
            clf.predict_files([files[name]])
        assert exc.value.kind == "too_large"
    proc = subprocess.run([sys.executable, "-m", "tlearn.runtime", str(tiny_model), str(files["thin.png"]),
                           str(files["deep16.png"]), str(files["figure.eps"])], capture_output=True, text=True,
                          timeout=120, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.returncode == 1  # some inputs were skipped
    assert [Path(row[0]).name for row in csv.reader(io.StringIO(proc.stdout))][1:] == ["deep16.png"]
    assert "thin.png" in proc.stderr and "figure.eps" in proc.stderr and "Traceback" not in proc.stderr


# --- the HTTP server ---

def request(port: int, method: str, path: str, body: bytes | None = None, headers: dict | None = None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        data = resp.read()
        return resp.status, dict(resp.getheaders()), (json.loads(data) if data[:1] == b"{" else data)
    finally:
        conn.close()


@pytest.fixture(scope="module")
def server(tiny_model, tmp_path_factory):
    srv = bench.ServerProcess(tiny_model, "--upload-timeout", "1.5", log_path=tmp_path_factory.mktemp("log") / "s.log")
    yield srv
    srv.stop()


def test_hostile_posts_get_4xx_with_a_request_id_and_no_exception_text(server, files):
    cut = files["ok.png"].read_bytes()[:60]
    cases = {"thin.png": (files["thin.png"].read_bytes(), 400, "too_large"),
             "forged.png": (files["forged.png"].read_bytes(), 400, "too_large"),
             "figure.eps": (files["figure.eps"].read_bytes(), 415, "not_image"),
             "cut.png": (cut, 400, "corrupt")}
    ids = {}
    for name, (data, want_status, want_code) in cases.items():
        for body, headers in (bench_multipart(name, data), (data, {"Content-Type": "application/octet-stream"})):
            status, resp_headers, out = request(server.port, "POST", "/predict", body, headers)
            assert status == want_status and out["error"] == want_code, (name, status, out)
            assert out["request_id"] == resp_headers["x-request-id"] and len(out["request_id"]) == 12
            assert out["detail"] == IMAGE_DETAIL[want_code]  # a fixed text per kind of error
            for leak in ("Error", "Traceback", "PIL", "identify", "truncated image", "decompression", name):
                assert leak not in json.dumps({k: v for k, v in out.items() if k != "file"}), (name, leak, out)
            ids[out["request_id"]] = name
    status, _, out = request(server.port, "POST", "/predict", files["deep16.png"].read_bytes(),
                             {"Content-Type": "image/png"})
    assert status == 200 and out["predictions"][0]["label"] in ("dark", "light")
    log = server.log()
    for rid, name in ids.items():  # the reasons are in the server's log under each id
        line = next(line for line in log.splitlines() if rid in line)
        assert {"thin.png": "too thin", "forged.png": "too thin", "figure.eps": "not an image",
                "cut.png": "corrupt"}[name] in line
    status, _, health = request(server.port, "GET", "/health")
    assert status == 200 and health["server_errors"] == 0 and "pid" not in health


def bench_multipart(name: str, data: bytes) -> tuple[bytes, dict]:
    boundary = "hostile-boundary-1"
    body = (f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n'
            "Content-Type: image/png\r\n\r\n").encode() + data + f"\r\n--{boundary}--\r\n".encode()
    return body, {"Content-Type": f"multipart/form-data; boundary={boundary}"}


def test_metadata_has_no_absolute_paths(server, tiny_model):
    status, _, meta = request(server.port, "GET", "/metadata")
    assert status == 200 and meta["model_file"] == "tiny.onnx" and meta["run"] == "some_run"
    text = json.dumps(meta)
    assert str(tiny_model.parent) not in text and '"/' not in text
    assert meta["limits"]["max_concurrency"] >= 1 and "allowed_hosts" not in meta["limits"]


def _stalled_upload(port: int, content_type: str, trickle: bool) -> tuple[float, bytes]:
    """Send headers and a little of a 100000-byte body, then nothing (or a byte every 0.2 s); the answer."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=15)
    start = b"\x89PNG\r\n"
    if content_type.startswith("multipart/"):  # a well-formed start of a file part, so the parser waits for more
        start = (b'--x\r\nContent-Disposition: form-data; name="file"; filename="a.png"\r\n'
                 b"Content-Type: image/png\r\n\r\n" + start)
    sock.sendall(f"POST /predict HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: {content_type}\r\n"
                 "Content-Length: 100000\r\n\r\n".encode() + start)
    t0 = time.monotonic()
    stop = threading.Event()

    def drip():
        while not stop.wait(0.2):
            try:
                sock.sendall(b"\0")
            except OSError:
                return

    if trickle:
        threading.Thread(target=drip, daemon=True).start()
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except (ConnectionResetError, socket.timeout):
        pass
    finally:
        stop.set()
        sock.close()
    return time.monotonic() - t0, data


@pytest.mark.parametrize("content_type,trickle", [("image/png", False), ("image/png", True),
                                                  ("multipart/form-data; boundary=x", True)])
def test_stalled_uploads_are_timed_out(server, content_type, trickle):
    seconds, answer = _stalled_upload(server.port, content_type, trickle)
    assert answer.startswith(b"HTTP/1.1 408"), answer[:300]
    body = json.loads(answer.split(b"\r\n\r\n", 1)[1])
    assert body["error"] == "timeout" and len(body["request_id"]) == 12
    assert 1.4 < seconds < 8, seconds


def test_foreign_host_headers_are_refused_on_a_local_bind(server):
    for host in ("evil.example", f"evil.example:{server.port}", "127.0.0.1.nip.io", "localhost:1"):
        status, _, out = request(server.port, "GET", "/health", headers={"Host": host})
        assert status == 403 and out["error"] == "forbidden_host", host
    for host in (f"localhost:{server.port}", f"127.0.0.1:{server.port}", "localhost"):
        assert request(server.port, "GET", "/health", headers={"Host": host})[0] == 200, host


def test_cross_origin_posts_are_refused(server, files):
    body, headers = bench_multipart("ok.png", files["ok.png"].read_bytes())
    for origin in ("http://evil.example", "null", f"http://localhost:{server.port + 1}"):
        status, _, out = request(server.port, "POST", "/predict", body, {**headers, "Origin": origin})
        assert status == 403 and out["error"] == "cross_origin", origin
    status, _, out = request(server.port, "POST", "/predict", body,
                             {**headers, "Origin": f"http://127.0.0.1:{server.port}"})  # the page itself
    assert status == 200 and len(out["predictions"]) == 1


def test_max_concurrency_answers_busy_and_request_pixels_are_capped(tiny_model, files, tmp_path):
    srv = bench.ServerProcess(tiny_model, "--max-concurrency", "1", "--upload-timeout", "2",
                              "--max-request-pixels", "1000000", log_path=tmp_path / "s.log")
    try:
        holder = threading.Thread(target=_stalled_upload, args=(srv.port, "image/png", False))
        holder.start()
        time.sleep(0.5)
        status, headers, out = request(srv.port, "POST", "/predict", files["ok.png"].read_bytes(),
                                       {"Content-Type": "image/png"})
        assert status == 503 and out["error"] == "busy" and headers["retry-after"] == "1"
        holder.join()
        assert request(srv.port, "POST", "/predict", files["ok.png"].read_bytes(),
                       {"Content-Type": "image/png"})[0] == 200
        square = bench.png_bytes(Image.new("RGB", (800, 800)))  # 0.64 Mpx: one fits the cap, two do not
        assert request(srv.port, "POST", "/predict", *bench_multipart("a.png", square))[0] == 200
        body = b"".join(bench_multipart(n, square)[0].rsplit(b"--hostile-boundary-1--", 1)[0] for n in "ab")
        status, _, out = request(srv.port, "POST", "/predict", body + b"--hostile-boundary-1--\r\n",
                                 bench_multipart("a.png", square)[1])
        assert status == 400 and out["error"] == "too_large" and out["file"] == "b", out
    finally:
        srv.stop()


def test_tlearn_serve_entry_point_has_the_same_guards(tiny_model, files, tmp_path):
    srv = bench.ServerProcess(tiny_model, module="tlearn serve", log_path=tmp_path / "s.log")
    try:
        status, _, out = request(srv.port, "POST", "/predict", files["thin.png"].read_bytes(),
                                 {"Content-Type": "image/png"})
        assert status == 400 and out["error"] == "too_large" and "request_id" in out
        assert request(srv.port, "GET", "/health", headers={"Host": "evil.example"})[0] == 403
    finally:
        srv.stop()


def test_server_peak_memory_while_8_hostile_images_are_posted_at_once(tiny_model, tmp_path):
    # two decode threads (the default is one per core): the bound holds on any machine
    srv = bench.ServerProcess(tiny_model, "--decode-threads", "2", log_path=tmp_path / "s.log")
    try:
        result = bench.burst(srv, bench.hostile_set("mixed", 8))
    finally:
        srv.stop()
    print(f"\nserver peak RSS {result['peak_mb_before']:.0f} -> {result['peak_mb_during']:.0f} MB "
          f"(+{result['peak_growth_mb']:.0f} MB) while 8 hostile images were posted at once")
    assert result["statuses"] == [200, 200, 400, 400] * 2
    assert result["peak_growth_mb"] < PEAK_GROWTH_BOUND_MB, result


# --- paths: manifests and symbolic links ---

def test_manifest_relative_paths_outside_its_folder_are_warned_about(tmp_path, caplog):
    data = write_class_tree(tmp_path / "data" / "imgs", {"a": 4, "b": 4}, size=16).parent
    outside = write_class_tree(tmp_path / "elsewhere", {"a": 1}, size=16) / "a" / "a_0.png"
    (data / "imgs" / "link.png").symlink_to(outside)
    rows = ["path,label"] + [f"imgs/{c}/{c}_{i}.png,{c}" for c in "ab" for i in range(4)]
    with caplog.at_level("WARNING", logger="tlearn"):
        for extra in (str(data / "imgs" / "a" / "a_0.png"), str(outside)):  # absolute paths: taken as written
            (data / "ok.csv").write_text("\n".join(rows + [f"{extra},a"]) + "\n")
            splits = load_splits(data / "ok.csv")
            assert len(splits.train) + len(splits.val) == 9
    assert "outside its folder" not in caplog.text
    for bad in ("../elsewhere/a/a_0.png", "imgs/link.png"):
        caplog.clear()
        (data / "bad.csv").write_text("\n".join(rows + [f"{bad},a"]) + "\n")
        with caplog.at_level("WARNING", logger="tlearn"):
            load_splits(data / "bad.csv")
        assert "bad.csv" in caplog.text and "line 10: " + bad in caplog.text and "outside its folder" in caplog.text


def test_symlinks_out_of_a_class_tree_are_skipped_and_listed(tmp_path):
    data = write_class_tree(tmp_path / "data", {"a": 4, "b": 4}, size=16)
    secret = write_class_tree(tmp_path / "private", {"x": 2}, size=16) / "x"
    (data / "a" / "leak.png").symlink_to(secret / "x_0.png")
    (data / "a" / "linked").symlink_to(secret, target_is_directory=True)
    (data / "b" / "inside.png").symlink_to(data / "b" / "b_0.png")  # a link within the data folder is read
    s = load_splits(data)
    used = {p.path.name for p in s.train + s.val}
    skipped = {Path(k.path).name: k.reason for k in s.skipped}
    assert "leak.png" not in used and "outside the data folder" in skipped["leak.png"]
    assert "linked" in skipped and "not searched" in skipped["linked"]
    assert "inside.png" in used and "x_0.png" not in used
