"""Helpers for the front desk's tests: a signature as drawn on the window's pad, and a walk-in form
for a catalogue item with every material it needs."""
from __future__ import annotations

import math

from shared.domain.catalog import Catalog
from shared.evidence_image import encode_png
from town_center.front_desk.window import WalkInForm


def pad_signature(width: int = 560, height: int = 180) -> bytes:
    """A transparent pad-sized PNG with a dark stroke across it, as the window's canvas exports it."""
    pixels = bytearray(b"\xff\xff\xff\x00" * (width * height))
    for x in range(40, width - 40):
        y = int(height / 2 + (height / 3) * math.sin(x / 25))
        for dy in range(-2, 3):
            i = ((y + dy) * width + x) * 4
            pixels[i:i + 4] = b"\x11\x11\x11\xff"
    return encode_png(width, height, bytes(pixels))


def photo_of_form(width: int = 320, height: int = 240) -> bytes:
    """A photo-sized PNG with writing on it: the applicant's signed 委托书."""
    pixels = bytearray(b"\xf0\xf0\xf0\xff" * (width * height))
    for y in range(40, height - 40, 24):
        for x in range(30, width - 30):
            i = (y * width + x) * 4
            pixels[i:i + 4] = b"\x20\x20\x20\xff"
    return encode_png(width, height, bytes(pixels))


def walk_in_form(catalog: Catalog, code: str = "MZ-001", **overrides: object) -> WalkInForm:
    item = catalog.item(code)
    form = WalkInForm(applicant_name="张秀英", id_number="110101199003070011", phone="13800001111", address="青石村一组",
                      catalog_code=code, materials_brought=[m.id for m in item.materials if not m.condition],
                      not_applicable=[m.id for m in item.materials if m.condition], signature_png=pad_signature())
    for key, value in overrides.items():
        setattr(form, key, value)
    return form
