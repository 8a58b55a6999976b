"""Is an image a real mark by the villager? Checks on the evidence of an authorization or a sign-off.

A pad submitted without a stroke still yields a valid PNG (transparent, or white), and a crafted
POST can send any image at all, so the server looks at the pixels itself instead of trusting the
page's script. Pure: bytes in, a Chinese problem (or None) out; nothing here touches disk or logs.

PNG files are decoded here with `zlib` only (no imaging library on the cheap laptop): 8-bit
grey, grey+alpha, RGB, RGBA and palette images, non-interlaced, which is what every browser's
`canvas.toDataURL("image/png")` writes. JPEG photos are checked by their size in pixels only.
"""
from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

MAX_EVIDENCE_BYTES = 3 * 1024 * 1024
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
JPEG_SIGNATURE = b"\xff\xd8\xff"

# The pad is 560×180; a smaller drawn signature is not from the pad (or was cut to nothing).
MIN_PAD_WIDTH, MIN_PAD_HEIGHT = 200, 60
# A photo of a form or of a fingerprint mark smaller than this shows nothing a person could check.
MIN_PHOTO_SIDE = 64
# Decoding is pure Python: bound the work (a pad image is ~0.1 megapixel).
MAX_INSPECTED_PIXELS = 1_500_000
# A pixel is ink when it is visible (alpha) and darker than paper; a stroke leaves hundreds.
_INK_ALPHA = 64
_INK_LUMA = 200
MIN_INK_PIXELS = 60
MIN_INK_SPAN = 24   # pixels, across or down: a single tap or a dot is not a signature

_BYTES_PER_PIXEL = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}


class ImageUnreadable(ValueError):
    """The bytes are not an image this module can inspect (not a reason in itself to refuse a photo)."""


@dataclass(frozen=True)
class Ink:
    """How much of an image is ink, and how far the ink reaches."""

    width: int
    height: int
    pixels: int
    span_x: int
    span_y: int


def is_image(data: bytes) -> bool:
    return data.startswith(PNG_SIGNATURE) or data.startswith(JPEG_SIGNATURE)


def drawn_signature_problem(data: bytes) -> str | None:
    """Why a drawn signature from the pad cannot stand as the villager's signature, or None."""
    if not data:
        return "请群众在签名框内签名"
    if len(data) > MAX_EVIDENCE_BYTES:
        return "签名图片超过 3 MB，请清除后重签"
    if not data.startswith(PNG_SIGNATURE):
        return "签名图片无效，请清除后重签"
    try:
        width, height = png_size(data)
        if width < MIN_PAD_WIDTH or height < MIN_PAD_HEIGHT:
            return "签名图片过小，不是签名框中的签名，请在签名框内重签"
        ink = png_ink(data)
    except ImageUnreadable:
        return "签名图片无效，请清除后重签"
    if ink.pixels == 0:
        return "签名框是空白的，请群众在框内签名"
    if ink.pixels < MIN_INK_PIXELS or max(ink.span_x, ink.span_y) < MIN_INK_SPAN:
        return "签名框内只有一点笔迹，不能作为签名，请群众完整签名"
    return None


def photo_problem(data: bytes, *, what: str) -> str | None:
    """Why a photo (of the signed form, or of a fingerprint mark) cannot be taken, or None. `what` names it in Chinese."""
    if not data:
        return f"请拍摄或选择{what}的照片"
    if len(data) > MAX_EVIDENCE_BYTES:
        return "图片超过 3 MB，请重新拍摄或压缩"
    if not is_image(data):
        return "只接受 PNG 或 JPEG 图片"
    try:
        width, height = png_size(data) if data.startswith(PNG_SIGNATURE) else jpeg_size(data)
    except ImageUnreadable:
        return "图片已损坏，无法打开，请重新拍摄"
    if min(width, height) < MIN_PHOTO_SIDE:
        return f"图片过小（{width}×{height} 像素），看不清{what}，请重新拍摄"
    if data.startswith(PNG_SIGNATURE) and width * height <= MAX_INSPECTED_PIXELS:
        try:
            if png_ink(data).pixels == 0:
                return f"图片是空白的，看不到{what}，请重新拍摄"
        except ImageUnreadable:
            pass  # an unusual PNG encoding: its size was fine, a person sees the photo
    return None


# ---------------------------------------------------------------------------- PNG


def _chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    if not data.startswith(PNG_SIGNATURE):
        raise ImageUnreadable("not a PNG")
    out, pos = [], len(PNG_SIGNATURE)
    while pos + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if len(body) != length:
            raise ImageUnreadable("truncated chunk")
        out.append((kind, body))
        pos += 12 + length
        if kind == b"IEND":
            break
    if not out or out[0][0] != b"IHDR" or len(out[0][1]) != 13:
        raise ImageUnreadable("no IHDR")
    return out


def png_size(data: bytes) -> tuple[int, int]:
    if len(data) < 24 or data[12:16] != b"IHDR":
        raise ImageUnreadable("no IHDR")
    width, height = struct.unpack(">II", data[16:24])
    if width == 0 or height == 0:
        raise ImageUnreadable("empty image")
    return width, height


def png_ink(data: bytes) -> Ink:
    """Count the ink in a PNG. Raises `ImageUnreadable` for encodings this module does not decode."""
    chunks = _chunks(data)
    width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", chunks[0][1])
    if depth != 8 or colour not in _BYTES_PER_PIXEL or interlace != 0:
        raise ImageUnreadable("unsupported PNG encoding")
    if width * height > MAX_INSPECTED_PIXELS:
        raise ImageUnreadable("too large to inspect")
    bpp = _BYTES_PER_PIXEL[colour]
    stride = width * bpp
    expected = (stride + 1) * height
    inflater = zlib.decompressobj()
    try:
        raw = inflater.decompress(b"".join(body for kind, body in chunks if kind == b"IDAT"), expected + 1)
    except zlib.error as exc:
        raise ImageUnreadable("bad image data") from exc
    if len(raw) != expected:
        raise ImageUnreadable("image data has the wrong size")
    palette = next((body for kind, body in chunks if kind == b"PLTE"), b"")
    alphas = next((body for kind, body in chunks if kind == b"tRNS"), b"")
    if colour == 3 and not palette:
        raise ImageUnreadable("palette image without a palette")
    ink_of = _ink_test(colour, palette, alphas)

    pixels = 0
    min_x = min_y = 1 << 30
    max_x = max_y = -1
    previous = bytearray(stride)
    for y in range(height):
        start = y * (stride + 1)
        row = _unfilter(raw[start], bytearray(raw[start + 1:start + 1 + stride]), previous, bpp)
        previous = row
        row_ink = [x for x in range(width) if ink_of(row, x * bpp)]
        if row_ink:
            pixels += len(row_ink)
            min_y = min(min_y, y)
            max_y = y
            min_x = min(min_x, row_ink[0])
            max_x = max(max_x, row_ink[-1])
    if pixels == 0:
        return Ink(width, height, 0, 0, 0)
    return Ink(width, height, pixels, max_x - min_x + 1, max_y - min_y + 1)


def _unfilter(kind: int, row: bytearray, above: bytearray, bpp: int) -> bytearray:
    # PNG specification, section 9: the five scanline filters, undone in place.
    if kind == 0:
        return row
    n = len(row)
    if kind == 1:
        for i in range(bpp, n):
            row[i] = (row[i] + row[i - bpp]) & 0xFF
    elif kind == 2:
        for i in range(n):
            row[i] = (row[i] + above[i]) & 0xFF
    elif kind == 3:
        for i in range(n):
            left = row[i - bpp] if i >= bpp else 0
            row[i] = (row[i] + ((left + above[i]) >> 1)) & 0xFF
    elif kind == 4:
        for i in range(n):
            a = row[i - bpp] if i >= bpp else 0
            b = above[i]
            c = above[i - bpp] if i >= bpp else 0
            p = a + b - c
            pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
            row[i] = (row[i] + (a if pa <= pb and pa <= pc else (b if pb <= pc else c))) & 0xFF
    else:
        raise ImageUnreadable("unknown scanline filter")
    return row


def _ink_test(colour: int, palette: bytes, alphas: bytes):
    def dark(r: int, g: int, b: int) -> bool:
        return (299 * r + 587 * g + 114 * b) // 1000 < _INK_LUMA

    if colour == 6:
        return lambda row, i: row[i + 3] >= _INK_ALPHA and dark(row[i], row[i + 1], row[i + 2])
    if colour == 2:
        return lambda row, i: dark(row[i], row[i + 1], row[i + 2])
    if colour == 4:
        return lambda row, i: row[i + 1] >= _INK_ALPHA and row[i] < _INK_LUMA
    if colour == 0:
        return lambda row, i: row[i] < _INK_LUMA

    def indexed(row: bytearray, i: int) -> bool:
        index = row[i]
        if 3 * index + 2 >= len(palette):
            return False
        alpha = alphas[index] if index < len(alphas) else 255
        return alpha >= _INK_ALPHA and dark(palette[3 * index], palette[3 * index + 1], palette[3 * index + 2])

    return indexed


# ---------------------------------------------------------------------------- JPEG


def jpeg_size(data: bytes) -> tuple[int, int]:
    """Width and height from the first SOF marker."""
    if not data.startswith(JPEG_SIGNATURE):
        raise ImageUnreadable("not a JPEG")
    pos = 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            raise ImageUnreadable("bad JPEG marker")
        marker = data[pos + 1]
        if marker == 0xFF:   # fill byte
            pos += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            pos += 2
            continue
        (length,) = struct.unpack(">H", data[pos + 2:pos + 4])
        if marker in (0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF):
            if pos + 9 > len(data):
                break
            height, width = struct.unpack(">HH", data[pos + 5:pos + 9])
            if width == 0 or height == 0:
                raise ImageUnreadable("empty image")
            return width, height
        if marker == 0xDA:   # start of scan before any frame header
            break
        pos += 2 + length
    raise ImageUnreadable("no JPEG frame header")


# ---------------------------------------------------------------------------- writing (tests, demos)


def encode_png(width: int, height: int, rgba: bytes) -> bytes:
    """An 8-bit RGBA PNG of `rgba` (width*height*4 bytes, rows top to bottom), unfiltered."""
    if len(rgba) != width * height * 4:
        raise ValueError("rgba has the wrong length")
    stride = width * 4
    raw = b"".join(b"\x00" + rgba[y * stride:(y + 1) * stride] for y in range(height))

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)
    return PNG_SIGNATURE + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")
