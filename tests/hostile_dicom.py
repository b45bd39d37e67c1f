"""Hostile DICOM files, made here with pydicom (tests and benchmarks/dicom_hostile.py): deflate bombs, compressed
frames whose codestream claims another size than the header, and each malformed grey-value attribute. Valid
files to put beside them: an uncompressed and a deflated copy of the same small image.

    python tests/hostile_dicom.py FOLDER        # writes the corpus there and prints what each file is

Every hostile file is small (kilobytes to about a megabyte); what it claims is not.
"""
from __future__ import annotations

import io
import struct
import sys
import zlib
from pathlib import Path

import numpy as np

from dicom_helpers import new_dataset  # tests/ is on the path under pytest, the benchmark and as a script

DEFLATED = "1.2.840.10008.1.2.1.99"
JPEG_BASELINE = "1.2.840.10008.1.2.4.50"
JPEG_LS = "1.2.840.10008.1.2.4.80"
J2K_LOSSLESS = "1.2.840.10008.1.2.4.90"
RLE = "1.2.840.10008.1.2.5"
CLAIMED = 20_000  # the side a forged codestream claims: 400 million pixels
BOMB_BYTES = 1 << 30  # what a deflate bomb inflates to (about 1 MB on disk)

# name -> (what it is, the words its refusal reason must hold)
HOSTILE = {
    "deflate_bomb.dcm": ("deflated, 64x64 in its header, 1 GiB of zeros in its pixel data", "decompression bomb"),
    "deflate_header_bomb.dcm": ("deflated, 1 GiB of zeros in a private element before the pixel data",
                                "decompression bomb"),
    "deflate_too_many_frames.dcm": ("deflated, 2000 frames of 4000x4000 declared", "would inflate"),
    "j2k_mismatch.dcm": (f"JPEG 2000, 64x64 in its header, {CLAIMED}x{CLAIMED} in its SIZ marker",
                         "codestream is 20000x20000"),
    "jpeg_mismatch.dcm": (f"JPEG baseline, 64x64 in its header, {CLAIMED}x{CLAIMED} in its SOF0",
                          "codestream is 20000x20000"),
    "jpegls_mismatch.dcm": (f"JPEG-LS, 64x64 in its header, {CLAIMED}x{CLAIMED} in its SOF55",
                            "codestream is 20000x20000"),
    "rle_bomb.dcm": ("RLE, 64x64 in its header, a segment of runs that decodes to 12.8 MB", "decodes to more"),
    "voi_lut_bits_65535.dcm": ("a VOI LUT Sequence whose descriptor says 65535 bits", "VOI LUT Descriptor"),
    "voi_lut_empty.dcm": ("a VOI LUT Sequence with empty LUT Data", "VOI LUT"),
    "modality_lut_garbage.dcm": ("a Modality LUT Sequence with 3 bytes of LUT Data for 4096 entries",
                                 "modality LUT"),
    "rescale_slope_abc.dcm": ('Rescale Slope "abc"', "modality LUT"),
}
VALID = ("valid.dcm", "valid_deflated.dcm")


def _dataset(rows: int = 64, cols: int = 64, frames: int | None = None, syntax: str = "1.2.840.10008.1.2.1"):
    ds = new_dataset(syntax, patient="hostile")
    ds.Rows, ds.Columns = rows, cols
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    if frames:
        ds.NumberOfFrames = frames
    return ds


def _ramp(rows: int = 64, cols: int = 64) -> np.ndarray:
    return (np.add.outer(np.arange(rows), np.arange(cols)) * 4095 // (rows + cols - 2)).astype("<u2")


def _save(ds, path: Path) -> Path:
    ds.save_as(path, enforce_file_format=True)
    return path


def _file_meta_bytes(ds) -> bytes:
    """Preamble, 'DICM' and the file meta group of ds, as pydicom writes them."""
    from pydicom.filebase import DicomBytesIO
    from pydicom.filewriter import write_file_meta_info

    fp = DicomBytesIO()
    fp.is_little_endian, fp.is_implicit_VR = True, False
    write_file_meta_info(fp, ds.file_meta, enforce_standard=True)
    return b"\0" * 128 + b"DICM" + fp.getvalue()


def _elements_bytes(ds) -> bytes:
    """ds's data set (no file meta) in explicit VR little endian."""
    from pydicom.filebase import DicomBytesIO
    from pydicom.filewriter import write_dataset

    fp = DicomBytesIO()
    fp.is_little_endian, fp.is_implicit_VR = True, False
    write_dataset(fp, ds)
    return fp.getvalue()


def _deflated_file(ds, tail_header: bytes, zeros: int, path: Path) -> Path:
    """A deflated file: ds's elements, then tail_header (an element's tag, VR and length), then `zeros` zero bytes,
    deflated as a stream (1 MiB of zeros at a time: the file is about zeros / 1000 bytes)."""
    z = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    parts = [z.compress(_elements_bytes(ds) + tail_header)]
    block = bytes(1 << 20)
    for _ in range(zeros >> 20):
        parts.append(z.compress(block))
    parts.append(z.compress(bytes(zeros & ((1 << 20) - 1))))
    parts.append(z.flush())
    path.write_bytes(_file_meta_bytes(ds) + b"".join(parts))
    return path


def _encapsulated(ds, frame: bytes, path: Path) -> Path:
    from pydicom.encaps import encapsulate

    ds.PixelData = encapsulate([frame])
    ds["PixelData"].VR = "OB"
    ds["PixelData"].is_undefined_length = True
    return _save(ds, path)


def j2k_header(width: int, height: int) -> bytes:
    """The start of a one-component 16-bit JPEG 2000 codestream: SOC, SIZ (one tile), then EOC."""
    siz = struct.pack(">HHIIIIIIIIH", 41, 0, width, height, 0, 0, width, height, 0, 0, 1) + bytes([15, 1, 1])
    return b"\xff\x4f\xff\x51" + siz + b"\xff\xd9"


def jpeg_with_size(width: int, height: int) -> bytes:
    """A real 8x8 baseline JPEG whose SOF0 is made to claim width x height."""
    from PIL import Image

    buf = io.BytesIO()
    Image.new("L", (8, 8), 128).save(buf, format="JPEG")
    data = bytearray(buf.getvalue())
    at = data.index(b"\xff\xc0")
    data[at + 5:at + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def jpegls_header(width: int, height: int) -> bytes:
    """SOI and a JPEG-LS SOF55 frame header (one 12-bit component), then EOI."""
    return b"\xff\xd8\xff\xf7" + struct.pack(">HBHHB", 11, 12, height, width, 1) + bytes([1, 0x11, 0]) + b"\xff\xd9"


def rle_bomb(segment_bytes: int = 200_000) -> bytes:
    """An RLE frame with 2 segments (16-bit grey); the first is runs of 128 zeros: 64 times its length."""
    runs = b"\x81\x00" * (segment_bytes // 2)
    second = b"\x00\x00"
    header = struct.pack("<16I", 2, 64, 64 + len(runs), *([0] * 13))
    return header + runs + second


def _lut_item(descriptor, data: bytes):
    from pydicom.dataset import Dataset

    item = Dataset()
    item.LUTDescriptor = list(descriptor)
    item.add_new(0x00283006, "OW", data)  # LUT Data
    return item


def write_corpus(folder: Path, bomb_bytes: int = BOMB_BYTES) -> dict[str, Path]:
    """Every file of HOSTILE and VALID in folder; name -> path."""
    from pydicom import config
    from pydicom.sequence import Sequence

    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    ds = _dataset()
    ds.PixelData = _ramp().tobytes()
    out["valid.dcm"] = _save(ds, folder / "valid.dcm")
    ds = _dataset(syntax=DEFLATED)
    ds.PixelData = _ramp().tobytes()
    out["valid_deflated.dcm"] = _save(ds, folder / "valid_deflated.dcm")

    pixel_header = struct.pack("<HH2sHI", 0x7FE0, 0x0010, b"OW", 0, 64 * 64 * 2)
    out["deflate_bomb.dcm"] = _deflated_file(_dataset(syntax=DEFLATED), pixel_header, bomb_bytes,
                                             folder / "deflate_bomb.dcm")
    private = struct.pack("<HH2sHI", 0x0009, 0x1010, b"OB", 0, 0xFFFFFFFE)  # a private element, 4 GB long
    out["deflate_header_bomb.dcm"] = _deflated_file(_dataset(syntax=DEFLATED), private, bomb_bytes,
                                                    folder / "deflate_header_bomb.dcm")
    many = struct.pack("<HH2sHI", 0x7FE0, 0x0010, b"OW", 0, 0xFFFFFFFE)
    out["deflate_too_many_frames.dcm"] = _deflated_file(_dataset(4000, 4000, 2000, DEFLATED), many, 1 << 20,
                                                        folder / "deflate_too_many_frames.dcm")

    out["j2k_mismatch.dcm"] = _encapsulated(_dataset(syntax=J2K_LOSSLESS), j2k_header(CLAIMED, CLAIMED),
                                            folder / "j2k_mismatch.dcm")
    ds = _dataset(syntax=JPEG_BASELINE)
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 8, 8, 7
    out["jpeg_mismatch.dcm"] = _encapsulated(ds, jpeg_with_size(CLAIMED, CLAIMED), folder / "jpeg_mismatch.dcm")
    out["jpegls_mismatch.dcm"] = _encapsulated(_dataset(syntax=JPEG_LS), jpegls_header(CLAIMED, CLAIMED),
                                               folder / "jpegls_mismatch.dcm")
    out["rle_bomb.dcm"] = _encapsulated(_dataset(syntax=RLE), rle_bomb(), folder / "rle_bomb.dcm")

    def uncompressed(name: str, change) -> None:
        ds = _dataset()
        ds.PixelData = _ramp().tobytes()
        with config.disable_value_validation():
            change(ds)
        out[name] = _save(ds, folder / name)

    uncompressed("voi_lut_bits_65535.dcm", lambda ds: setattr(
        ds, "VOILUTSequence", Sequence([_lut_item((256, 0, 65535), np.arange(256, dtype="<u2").tobytes())])))
    uncompressed("voi_lut_empty.dcm", lambda ds: setattr(ds, "VOILUTSequence", Sequence([_lut_item((256, 0, 16), b"")])))
    uncompressed("modality_lut_garbage.dcm", lambda ds: (
        setattr(ds, "ModalityLUTSequence", Sequence([_lut_item((4096, 0, 16), b"\x01\x02\x03")])),
        ds.ModalityLUTSequence[0].__setattr__("ModalityLUTType", "HU")))
    uncompressed("rescale_slope_abc.dcm", lambda ds: (setattr(ds, "RescaleSlope", "7.25"),
                                                      setattr(ds, "RescaleIntercept", "0")))
    data = out["rescale_slope_abc.dcm"].read_bytes()  # pydicom will not write "abc" as a number
    assert data.count(b"7.25") == 1
    out["rescale_slope_abc.dcm"].write_bytes(data.replace(b"7.25", b"abc "))
    assert set(out) == set(HOSTILE) | set(VALID)
    return out


if __name__ == "__main__":
    target = Path(sys.argv[1] if len(sys.argv) > 1 else "hostile_dicom")
    for name, path in sorted(write_corpus(target).items()):
        print(f"{path}  {path.stat().st_size:>9} B  {HOSTILE.get(name, ('valid',))[0]}")
