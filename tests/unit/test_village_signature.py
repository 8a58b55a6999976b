"""The server's own look at a villager's mark: an untouched or nearly empty pad is not a signature,
whatever the page's script did; photos are checked for size. Also the images other village tests use."""
from __future__ import annotations

import base64
import math
import struct
import zlib

import pytest

from shared.evidence_image import (
    PNG_SIGNATURE,
    drawn_signature_problem,
    encode_png,
    jpeg_size,
    photo_problem,
    png_ink,
)

PAD_W, PAD_H = 560, 180


def _canvas(width: int, height: int, fill: bytes = b"\x00\x00\x00\x00") -> bytearray:
    return bytearray(fill * (width * height))


def _dot(px: bytearray, width: int, x: int, y: int, colour: bytes) -> None:
    i = (y * width + x) * 4
    px[i:i + 4] = colour


def signature_png(colour: bytes = b"\x11\x11\x11\xff") -> bytes:
    """A pad (560×180, transparent like the browser's canvas) with a wavy stroke across it."""
    px = _canvas(PAD_W, PAD_H)
    for x in range(60, 480):
        y = int(90 + 35 * math.sin(x / 18))
        for dy in (-1, 0, 1):
            _dot(px, PAD_W, x, y + dy, colour)
    return encode_png(PAD_W, PAD_H, bytes(px))


def blank_png(width: int = PAD_W, height: int = PAD_H, fill: bytes = b"\x00\x00\x00\x00") -> bytes:
    return encode_png(width, height, bytes(_canvas(width, height, fill)))


def dot_png() -> bytes:
    """A pad touched once: the few pixels of a tap."""
    px = _canvas(PAD_W, PAD_H)
    for dx in range(3):
        for dy in range(3):
            _dot(px, PAD_W, 100 + dx, 90 + dy, b"\x11\x11\x11\xff")
    return encode_png(PAD_W, PAD_H, bytes(px))


def fingerprint_photo_png() -> bytes:
    """A 240×240 photo of paper (white) with a red ink thumbprint (concentric ridges) in the middle."""
    size = 240
    px = _canvas(size, size, b"\xf4\xf1\xea\xff")
    for y in range(size):
        for x in range(size):
            r = math.hypot((x - 120) / 0.75, y - 120)
            if r < 80 and int(r) % 6 < 3:
                _dot(px, size, x, y, b"\xb0\x1c\x1c\xff")
    return encode_png(size, size, bytes(px))


def data_url(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode()


def _paeth_filtered(width: int, height: int, rgba: bytes) -> bytes:
    """The same image with every row Paeth-filtered, as browsers often write it."""
    stride, out, previous = width * 4, bytearray(), bytearray(width * 4)
    for y in range(height):
        row = rgba[y * stride:(y + 1) * stride]
        filtered = bytearray(stride)
        for i in range(stride):
            a = row[i - 4] if i >= 4 else 0
            b = previous[i]
            c = previous[i - 4] if i >= 4 else 0
            p = a + b - c
            pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
            filtered[i] = (row[i] - (a if pa <= pb and pa <= pc else (b if pb <= pc else c))) & 0xFF
        out += b"\x04" + filtered
        previous = bytearray(row)

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    return (PNG_SIGNATURE + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(bytes(out))) + chunk(b"IEND", b""))


def test_a_stroke_across_the_pad_is_a_signature() -> None:
    assert drawn_signature_problem(signature_png()) is None


@pytest.mark.parametrize("image, why", [
    (blank_png(), "空白"),                                  # untouched canvas: transparent
    (blank_png(fill=b"\xff\xff\xff\xff"), "空白"),          # painted white
    (blank_png(fill=b"\x11\x11\x11\x00"), "空白"),          # dark but fully transparent
    (dot_png(), "一点笔迹"),                                # a tap is not a signature
    (blank_png(20, 10, b"\x11\x11\x11\xff"), "过小"),       # too tiny to come from the pad
    (b"", "签名"),
    (b"GIF89a....", "无效"),
])
def test_an_empty_tiny_or_foreign_pad_image_is_refused_in_chinese(image: bytes, why: str) -> None:
    problem = drawn_signature_problem(image)
    assert problem is not None and why in problem


def test_a_paeth_filtered_png_is_decoded_to_the_same_ink() -> None:
    px = bytearray(_canvas(PAD_W, PAD_H))
    for x in range(50, 300):
        _dot(px, PAD_W, x, 40 + x // 10, b"\x20\x20\x60\xff")
    plain, paeth = encode_png(PAD_W, PAD_H, bytes(px)), _paeth_filtered(PAD_W, PAD_H, bytes(px))
    assert png_ink(plain) == png_ink(paeth) and png_ink(plain).pixels == 250


def test_a_fingerprint_photo_is_accepted_and_a_blank_or_tiny_photo_refused() -> None:
    assert photo_problem(fingerprint_photo_png(), what="手印") is None
    assert "空白" in (photo_problem(blank_png(200, 200, b"\xff\xff\xff\xff"), what="手印") or "")
    assert "过小" in (photo_problem(blank_png(16, 16, b"\x00\x00\x00\xff"), what="手印") or "")
    assert "PNG 或 JPEG" in (photo_problem(b"%PDF-1.4", what="手印") or "")


def test_a_jpeg_photo_is_measured_from_its_frame_header() -> None:
    # SOI, an APP0 segment, then SOF0 with height 480 and width 640.
    jpeg = (b"\xff\xd8" + b"\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
            + b"\xff\xc0\x00\x11\x08\x01\xe0\x02\x80\x03\x01\x22\x00\x02\x11\x01\x03\x11\x01" + b"\xff\xd9")
    assert jpeg_size(jpeg) == (640, 480)
    assert photo_problem(jpeg, what="签收单") is None
