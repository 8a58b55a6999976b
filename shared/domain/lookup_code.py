"""The 查询码 a villager reads from the receipt to look up a matter: its alphabet, its written form, and
the hash the township stores instead of the code (the wire contract's lookup-code hash input, `docs/wire-v1.md`).

Pure: the code itself is drawn at the village (`village_agent.services.new_lookup_code`); here only its form.
"""
from __future__ import annotations

import hashlib
import re

ALPHABET = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"  # no 0/O, 1/I: read from paper by the elderly
_WRITTEN = re.compile(r"^[2-9A-HJ-NP-Z]{5}-?[2-9A-HJ-NP-Z]{5}$")


def normalise(raw: str) -> str | None:
    """The code as printed (`ABCDE-FGHJK`) from what a person typed (spaces, lower case, no dash), or None."""
    code = re.sub(r"\s+", "", raw or "").upper()
    if not _WRITTEN.match(code):
        return None
    return code if "-" in code else f"{code[:5]}-{code[5:]}"


def lookup_code_hash(code: str) -> bytes:
    """SHA-256 of the printed code in upper case (with its dash), as the filing carries it."""
    return hashlib.sha256(code.strip().upper().encode("ascii")).digest()
