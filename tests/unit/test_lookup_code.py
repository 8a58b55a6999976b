"""The 查询码 as a person types it and as the township stores it."""
from __future__ import annotations

import hashlib

from shared.domain.lookup_code import ALPHABET, lookup_code_hash, normalise


def test_a_code_typed_with_spaces_lower_case_or_no_dash_is_read_as_printed() -> None:
    assert normalise(" ab3cd ef4gh ") == normalise("AB3CDEF4GH") == normalise("AB3CD-EF4GH") == "AB3CD-EF4GH"


def test_letters_an_elderly_reader_would_confuse_are_not_codes() -> None:
    assert "O" not in ALPHABET and "I" not in ALPHABET and "0" not in ALPHABET and "1" not in ALPHABET
    assert normalise("AB0CD-EF4GH") is None and normalise("ABICD-EF4GH") is None and normalise("AB3CD") is None


def test_the_hash_is_sha256_of_the_printed_code_in_upper_case() -> None:
    assert lookup_code_hash("ab3cd-ef4gh") == hashlib.sha256(b"AB3CD-EF4GH").digest()
