"""The generated wire modules are committed; regenerating them must give the same bytes."""
from __future__ import annotations

from pathlib import Path

from shared.wire import codegen


def test_committed_generated_code_matches_a_fresh_generation(tmp_path: Path) -> None:
    fresh = codegen.generate_into(tmp_path)
    committed = {p.name: p.read_text(encoding="utf-8") for p in codegen.OUTPUT_DIR.iterdir() if p.is_file()}
    stale = sorted(n for n in fresh if committed.get(n) != fresh[n])
    extra = sorted(set(committed) - set(fresh))
    assert not stale and not extra, (
        f"shared/wire/v1 is stale (differs: {stale}, not generated: {extra}); "
        "run `python -m shared.wire.codegen` and commit the result"
    )


def test_every_generated_module_is_marked_generated() -> None:
    for path in codegen.OUTPUT_DIR.iterdir():
        if path.is_file():
            assert path.read_text(encoding="utf-8").startswith("# GENERATED"), path.name


def test_generated_modules_import_each_other_relatively_so_they_live_only_inside_shared() -> None:
    for path in codegen.OUTPUT_DIR.glob("*.py"):
        assert "from quancheng" not in path.read_text(encoding="utf-8"), path.name
