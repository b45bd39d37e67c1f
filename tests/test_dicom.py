"""DICOM as images: the standard's order (modality LUT, VOI, MONOCHROME1), discovery, limits and failures, on
synthetic files made here; the real dicom_samples when ../shared/data has them."""
from __future__ import annotations

import csv
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("pydicom")

from conftest import shared_dataset  # noqa: E402
from dicom_helpers import ROUND_TRIP, grey_as_dicom, write_dicom  # noqa: E402
from tlearn.config import FitConfig  # noqa: E402
from tlearn.data.images import UnreadableImage, load_rgb  # noqa: E402
from tlearn.data.layout import list_images, load_splits  # noqa: E402
from tlearn.errors import TlearnError  # noqa: E402
from tlearn.runtime import ImageError, decode_image, image_size  # noqa: E402
from tlearn.runtime_dicom import MAX_FRAMES, parse_window  # noqa: E402

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"


def grey(path: Path, **kw) -> np.ndarray:
    img = decode_image(path, **kw)
    arr = np.asarray(img)
    assert img.mode == "RGB" and (arr[..., 0] == arr[..., 2]).all()
    return arr[..., 0].astype(np.int64)


def ramp(h: int = 8, w: int = 32) -> np.ndarray:
    return np.tile(np.arange(w) * 128, (h, 1))  # 0..3968, 12-bit


def test_the_standards_order_rescale_then_window_then_monochrome1(tmp_path):
    stored = ramp()
    # rescale: modality value = 2 * stored - 1000; window 1000 +- 2000 over it
    m2 = write_dicom(tmp_path / "m2.dcm", stored, slope=2.0, intercept=-1000.0, center=1000.0, width=4001.0)
    modality = 2.0 * stored - 1000.0
    expected = np.rint(255 * np.clip((modality - 999.5) / 4000 + 0.5, 0, 1))
    assert np.array_equal(grey(m2), expected)
    # the same image as MONOCHROME1: inverted values (modality 2 top - 2000 - m), window mirrored about it
    top = 4095
    m1 = write_dicom(tmp_path / "m1.dcm", top - stored, photometric="MONOCHROME1", slope=2.0, intercept=-1000.0,
                     center=(2 * top - 2000) - 1000.0 + 1, width=4001.0)
    assert np.abs(grey(m1) - grey(m2)).max() <= 1
    # Presentation LUT Shape INVERSE inverts MONOCHROME2; with MONOCHROME1 (as DX files pair them) it is one inversion
    inv = write_dicom(tmp_path / "inv.dcm", stored, slope=2.0, intercept=-1000.0, center=1000.0, width=4001.0,
                      presentation="INVERSE")
    assert np.array_equal(grey(inv), 255 - expected)
    both = write_dicom(tmp_path / "both.dcm", top - stored, photometric="MONOCHROME1", presentation="INVERSE")
    assert np.abs(grey(both) - grey(tmp_path / "m1.dcm", dicom_window="none")).max() == 0


def test_window_auto_none_and_explicit(tmp_path):
    stored = ramp()
    path = write_dicom(tmp_path / "w.dcm", stored, center=2000.0, width=1001.0)
    auto, none, explicit = (grey(path, dicom_window=w) for w in ("auto", "none", "2000,1001"))
    assert np.array_equal(auto, explicit)
    assert none.min() == 0 and none.max() == 255 and np.all(np.diff(none[0]) > 0)  # min..max, no clipping
    assert (auto == 0).sum() > 8 and (auto == 255).sum() > 8  # the window clips both ends
    assert not np.array_equal(auto, none)
    # no window in the file: auto falls back to the values' own range
    plain = write_dicom(tmp_path / "plain.dcm", stored)
    assert np.array_equal(grey(plain), none)


def test_voi_lut_sequence_is_applied(tmp_path):
    stored = ramp()
    lut = (np.arange(4096) // 16).clip(0, 255)[::-1]  # an inverting 8-bit LUT over the 12-bit input range
    path = write_dicom(tmp_path / "lut.dcm", stored, voi_lut=((4096, 0, 8), lut), center=0.0, width=10.0)
    assert np.array_equal(grey(path), lut[stored])  # the LUT wins over the window
    assert not np.array_equal(grey(path, dicom_window="none"), lut[stored])


def test_window_setting_is_checked_and_recorded_in_fit_config():
    assert parse_window("auto") == "auto" and parse_window("40,400") == (40.0, 400.0)
    for bad in ("wide", "40", "40,0", "1,2,3", "nan,4"):
        with pytest.raises(ValueError, match="dicom-window"):
            parse_window(bad)
    with pytest.raises(TlearnError, match="--dicom-window"):
        FitConfig(data="d", out="o", dicom_window="soft")
    assert FitConfig(data="d", out="o", dicom_window="-600,1500").to_dict()["dicom_window"] == "-600,1500"


def test_multi_frame_files_give_their_middle_frame(tmp_path):
    frames = np.stack([np.full((6, 10), v) for v in (0, 1000, 2000, 3000, 4000)])
    frames[:, 0, 0] = 4095  # each frame non-constant
    frames[:, 0, 1] = 0
    path = write_dicom(tmp_path / "clip.dcm", frames, frames=5)
    g = grey(path)
    assert g.shape == (6, 10) and g[3, 5] == round(255 * 2000 / 4095)


def test_dicom_files_are_found_by_extension_or_by_content(tmp_path):
    rng = np.random.default_rng(0)
    for cls in ("a", "b"):
        folder = tmp_path / "data" / cls
        folder.mkdir(parents=True)
        for i in range(3):
            pixels = rng.integers(0, 4096, (16, 16))
            write_dicom(folder / f"{i}.dcm", pixels)
        write_dicom(folder / "1.2.840.99", pixels)  # a UID for a name: found by its 'DICM'
        write_dicom(folder / "noext", pixels)
        write_dicom(folder / "bare.dcm", pixels, preamble=False)  # no preamble: found by its name
        (folder / "notes").write_text("not an image")
    splits = load_splits(tmp_path / "data", val_fraction=0.34)
    found = {s.path.name for s in splits.train + splits.val}
    assert found == {"0.dcm", "1.dcm", "2.dcm", "1.2.840.99", "noext", "bare.dcm"}
    assert {Path(s.path).name for s in splits.skipped} == {"notes"}
    assert len(list_images(tmp_path / "data" / "a")) == 6
    for s in splits.train:
        assert load_rgb(s.path).size == (16, 16)


def test_limits_and_unreadable_dicom_files_have_reasons(tmp_path, monkeypatch):
    # the header's size is refused before any pixel data is read (this one has 4 bytes of it)
    huge = write_dicom(tmp_path / "huge.dcm", np.zeros((1, 2)), rows_cols=(30000, 30000))
    with pytest.raises(ImageError, match="too large") as exc:
        decode_image(huge)
    assert exc.value.kind == "too_large"
    assert image_size(huge) == (30000, 30000)
    many = write_dicom(tmp_path / "many.dcm", np.zeros((1, 4, 4)), frames=MAX_FRAMES + 1)
    with pytest.raises(ImageError, match="frames"):
        decode_image(many)
    good = write_dicom(tmp_path / "good.dcm", ramp())
    cut = tmp_path / "cut.dcm"
    cut.write_bytes(good.read_bytes()[:-100])
    with pytest.raises(UnreadableImage, match="DICOM pixel data cannot be decoded"):
        load_rgb(cut)
    no_image = tmp_path / "report.dcm"
    write_dicom(tmp_path / "tmp.dcm", ramp())
    import pydicom

    ds = pydicom.dcmread(tmp_path / "tmp.dcm")
    for keyword in ("Rows", "Columns", "PixelData"):
        delattr(ds, keyword)
    ds.save_as(no_image)
    with pytest.raises(UnreadableImage, match="without an image"):
        load_rgb(no_image)
    # without pydicom the reason says what to install
    monkeypatch.setitem(sys.modules, "pydicom", None)
    with pytest.raises(UnreadableImage, match=r"pip install 'tlearn\[dicom\]'"):
        load_rgb(good)


# ---- the real files in ../shared/data/dicom_samples ----

@pytest.fixture(scope="module")
def samples() -> tuple[Path, list[dict]]:
    root = shared_dataset("dicom_samples")
    with open(root / "files.csv", newline="") as f:
        return root, list(csv.DictReader(f))


@pytest.fixture(scope="module")
def decoded(samples) -> dict[str, np.ndarray | str]:
    """path -> decoded uint8 RGB array, or the reason it was skipped."""
    root, rows = samples
    out: dict[str, np.ndarray | str] = {}
    for row in rows:
        try:
            out[row["path"]] = np.asarray(load_rgb(root / row["path"]))
        except UnreadableImage as exc:
            out[row["path"]] = str(exc)
    return out


def _has_libjpeg() -> bool:
    import importlib.util

    return importlib.util.find_spec("libjpeg") is not None


def test_every_sample_decodes_to_a_sensible_image_and_a_contact_sheet(samples, decoded):
    root, rows = samples
    assert len(rows) == 37
    tiles = []
    for row in rows:
        arr = decoded[row["path"]]
        if isinstance(arr, str):  # only the 12-bit JPEG Extended may need the opt-in GPL decoder
            assert row["transfer_syntax_uid"] == "1.2.840.10008.1.2.4.51" and not _has_libjpeg(), (row["path"], arr)
            assert "tlearn[dicom-gpl]" in arr
            continue
        assert arr.shape == (int(row["rows"]), int(row["cols"]), 3), row["path"]
        few = arr[::4, ::4]
        assert few.std() > 5 and len(np.unique(few)) > 16, row["path"]  # an image, not a constant or a few levels
        tile = Image.fromarray(arr)
        tile.thumbnail((160, 160))
        tiles.append((row["path"], tile))
    cols = 8
    sheet = Image.new("RGB", (cols * 170, -(-len(tiles) // cols) * 180), "white")
    from PIL import ImageDraw

    draw = ImageDraw.Draw(sheet)
    for k, (name, tile) in enumerate(tiles):
        x, y = (k % cols) * 170, (k // cols) * 180
        sheet.paste(tile, (x + 5, y + 2))
        draw.text((x + 5, y + 165), Path(name).stem[:26], fill="black")
    ARTIFACTS.mkdir(exist_ok=True)
    sheet.save(ARTIFACTS / "dicom_contact_sheet.png")
    print(f"contact sheet: {ARTIFACTS / 'dicom_contact_sheet.png'}")


def test_encodings_of_one_image_agree_and_monochrome1_matches_monochrome2(samples, decoded, tmp_path):
    root, rows = samples
    groups: dict[str, list[dict]] = {}
    for row in rows:
        if not isinstance(decoded[row["path"]], str) and row["frames"] == "1":
            groups.setdefault(row["source_image"], []).append(row)
    compared = 0
    for name, members in groups.items():
        shapes = {decoded[r["path"]].shape for r in members}
        lossless = [r for r in members if r["lossy"] == "False"]
        if len(shapes) != 1 or len(lossless) < 2:  # CT_small / MR_small are crops of their image
            continue
        ref = decoded[lossless[0]["path"]].astype(int)
        for r in lossless[1:]:
            assert np.abs(decoded[r["path"]].astype(int) - ref).max() <= 1, (name, r["path"])
            compared += 1
    assert compared >= 8
    # RG3 is MONOCHROME1 in every encoding; its MONOCHROME2 encoding (values inverted, window mirrored)
    import pydicom

    ds = pydicom.dcmread(root / "XR" / "RG3_UNC.dcm")
    assert ds.PhotometricInterpretation == "MONOCHROME1"
    top = 2 ** ds.BitsStored - 1
    mono2 = write_dicom(tmp_path / "RG3_mono2.dcm", top - ds.pixel_array.astype(np.int64), bits_stored=ds.BitsStored,
                        center=top - float(ds.WindowCenter) + 1, width=float(ds.WindowWidth))
    m1, m2 = decoded["XR/RG3_UNC.dcm"].astype(int), np.asarray(load_rgb(mono2)).astype(int)
    assert np.abs(m1 - m2).max() <= 1  # within 1/255
    assert m1.std() > 20


def test_nonconformant_files_are_skipped_with_a_reason(tmp_path):
    bad = shared_dataset("dicom_nonconformant")
    from tlearn.backbones import load_backbone
    from tlearn.data.layout import Sample
    from tlearn.features.extract import extract_features

    good = write_dicom(tmp_path / "good.dcm", np.random.default_rng(0).integers(0, 4096, (40, 40)))
    files = sorted(bad.glob("*.dcm"))
    assert len(files) == 3
    backbone, info = load_backbone("compact_cnn", "none")
    fs = extract_features(backbone, [Sample(p, 0) for p in [*files, good]], info.data_config, use_cache=False,
                          num_workers=0, progress=False, device="cpu")
    assert [s.path for s in fs.samples] == [good]
    assert sorted(Path(s.path).name for s in fs.skipped) == [p.name for p in files]
    for s in fs.skipped:
        assert "DICOM pixel data cannot be decoded (JPEG Extended" in s.reason, s.reason


def test_round_trip_constants_reproduce_8_bit_grey(tmp_path):
    g = np.arange(256, dtype=np.uint8).reshape(16, 16)
    for photometric in ("MONOCHROME1", "MONOCHROME2"):
        assert np.array_equal(grey(grey_as_dicom(g, tmp_path / f"{photometric}.dcm", photometric)), g)
    assert ROUND_TRIP["width"] > 2000  # 12-bit: 16 stored values per grey level
