"""The size a compressed DICOM frame says it has, read from its codestream header before anything is decoded.

The JPEG, JPEG-LS and JPEG 2000 decoders allocate what the codestream's own header says, not what the DICOM
header (Rows, Columns) says, and an RLE segment can expand to 64 times its length; so these are read and checked
first (tlearn.runtime_dicom refuses a frame whose codestream disagrees with its header). Plain Python on bytes,
no imports: copy it next to runtime.py and runtime_dicom.py with a copied runtime.

- JPEG (SOF0-SOF15) and JPEG-LS (SOF55): the frame header's lines and samples per line;
- JPEG 2000: the SIZ marker's reference grid less its offsets (a JP2 wrapper's codestream box, else its ihdr);
- RLE: the segment count, and the length each segment decodes to, counted without decoding (stops past the limit).
"""
from __future__ import annotations

import struct

# JPEG start-of-frame markers (C4 DHT, C8 JPG and CC DAC are not frames) and JPEG-LS's SOF55.
_SOF = frozenset({*range(0xC0, 0xC4), *range(0xC5, 0xC8), *range(0xC9, 0xCC), *range(0xCD, 0xD0), 0xF7})
_STANDALONE = frozenset({0x01, *range(0xD0, 0xD9)})  # markers without a length field
_JP2_SIGNATURE = b"\x00\x00\x00\x0cjP  \r\n\x87\n"
_J2K_START = b"\xff\x4f\xff\x51"  # SOC, then SIZ
_RLE_HEADER = 64


class CodestreamError(ValueError):
    """The codestream's header is missing, damaged, or not where the transfer syntax says it is."""


def codestream_size(frame: bytes) -> tuple[int, int]:
    """(width, height) from a JPEG, JPEG-LS or JPEG 2000 frame's own header; CodestreamError otherwise."""
    if frame[:2] == b"\xff\xd8":
        return _jpeg_size(frame)
    if frame[:4] == _J2K_START:
        return _siz_size(frame)
    if frame[:12] == _JP2_SIGNATURE:
        return _jp2_size(frame)
    raise CodestreamError(f"the frame does not start with a JPEG or JPEG 2000 header (first bytes {frame[:4].hex()})")


def _jpeg_size(data: bytes) -> tuple[int, int]:
    pos, end = 2, len(data)
    while pos + 4 <= end:
        if data[pos] != 0xFF:
            raise CodestreamError(f"JPEG marker expected at byte {pos}")
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in _STANDALONE:
            pos += 2
            continue
        (length,) = struct.unpack(">H", data[pos + 2:pos + 4])
        if marker in _SOF:
            if pos + 9 > end:
                break
            height, width = struct.unpack(">HH", data[pos + 5:pos + 9])
            return width, height
        if marker == 0xDA or length < 2:  # scan data before any frame header
            break
        pos += 2 + length
    raise CodestreamError("no JPEG frame header (SOF) before the scan data")


def _siz_size(data: bytes, at: int = 0) -> tuple[int, int]:
    if len(data) < at + 24 or data[at:at + 4] != _J2K_START:
        raise CodestreamError("no JPEG 2000 SIZ marker at the start of the codestream")
    xsiz, ysiz, xosiz, yosiz = struct.unpack(">IIII", data[at + 8:at + 24])
    if xosiz >= xsiz or yosiz >= ysiz:
        raise CodestreamError(f"JPEG 2000 SIZ marker with an empty image ({xsiz}x{ysiz}, offsets {xosiz},{yosiz})")
    return xsiz - xosiz, ysiz - yosiz


def _jp2_size(data: bytes) -> tuple[int, int]:
    """A JP2 file: the codestream box's SIZ (what is decoded), else the image header box."""
    ihdr = None
    for kind, start, end in _boxes(data, 0, len(data)):
        if kind == b"jp2c":
            return _siz_size(data, start)
        if kind == b"jp2h":
            for sub, s, e in _boxes(data, start, end):
                if sub == b"ihdr" and e - s >= 8:
                    height, width = struct.unpack(">II", data[s:s + 8])
                    ihdr = (width, height)
    if ihdr is None:
        raise CodestreamError("JP2 file without an image header or codestream box")
    return ihdr


def _boxes(data: bytes, pos: int, end: int):
    """(type, content start, content end) of each box from pos to end."""
    while pos + 8 <= end:
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        header = 8
        if length == 1 and pos + 16 <= end:
            (length,) = struct.unpack(">Q", data[pos + 8:pos + 16])
            header = 16
        elif length == 0:
            length = end - pos
        if length < header:
            return
        yield kind, pos + header, min(end, pos + length)
        pos += length


def rle_segments(frame: bytes, expected_segments: int, segment_bytes: int) -> None:
    """CodestreamError unless the RLE frame has expected_segments segments, each decoding to at most
    segment_bytes (plus one padding byte); each segment's output is counted run by run, stopping past the limit."""
    if len(frame) < _RLE_HEADER:
        raise CodestreamError(f"RLE frame of {len(frame)} bytes has no 64-byte header")
    count, *offsets = struct.unpack("<16I", frame[:_RLE_HEADER])
    if count != expected_segments:
        raise CodestreamError(f"RLE frame with {count} segments; the DICOM header implies {expected_segments}")
    offsets = offsets[:count] + [len(frame)]
    for k in range(count):
        start, end = offsets[k], offsets[k + 1]
        if not _RLE_HEADER <= start <= end <= len(frame):
            raise CodestreamError(f"RLE segment {k + 1} has offsets {start}..{end} outside the frame")
        out = _rle_segment_length(frame, start, end, segment_bytes + 1)
        if out > segment_bytes + 1:
            raise CodestreamError(f"RLE segment {k + 1} decodes to more than {segment_bytes} bytes (the rows x "
                                  "columns of the DICOM header)")


def _rle_segment_length(data: bytes, pos: int, end: int, limit: int) -> int:
    """Bytes the PackBits segment data[pos:end] decodes to, counted until it passes limit."""
    out = 0
    while pos < end and out <= limit:
        n = data[pos]
        if n < 128:  # n + 1 literal bytes (as many as the segment still has)
            out += min(n + 1, end - pos - 1)
            pos += n + 2
        elif n > 128:  # the next byte 257 - n times
            out += 257 - n
            pos += 2
        else:  # 128: no operation
            pos += 1
    return out
