"""A device cannot choose the village its matters count under, and nothing a device or person typed
runs as a formula in a downloaded CSV: the township takes the village from the enrolled key, and every
exported text cell starting with = + - @ tab or CR is written as text. Records go through the
township's real relay core and intake; the CSV comes from the console's own download."""
from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from shared.domain.figures import FORMULA_PREFIXES, Figures, neutralise_formula, to_csv
from tests.town_fixtures import VillageDevice, township
from tests.unit.test_town_console import auth, client_for, web  # noqa: F401 - fixtures
from town_center.bootstrap import TownApp
from town_center.store.matter_tables import town_matter


@pytest.fixture
def town(tmp_path: Path) -> Iterator[TownApp]:
    app = township(f"sqlite:///{tmp_path / 'town.db'}")
    yield app
    app.close()


def _village_of(town: TownApp, matter_id: str) -> str:
    with town.store.engine.connect() as conn:
        return conn.execute(select(town_matter.c.village_code).where(town_matter.c.matter_id == matter_id)).scalar_one()


def _csv_rows(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text.lstrip("\ufeff"))))


def test_a_record_claiming_another_village_counts_under_the_village_its_key_was_enrolled_for(
        town: TownApp, web) -> None:
    device = VillageDevice(town, village_code="V001")
    device.village_code = "=1+1"          # the laptop now writes a formula into its records
    matter_id = device.file("MZ-003")
    assert _village_of(town, matter_id) == "V001"
    rows = _csv_rows(client_for(web, "zhao").get("/figures.csv", params={"by": "village"}).text)
    assert [r[0] for r in rows[1:]] == ["V001"]


def test_a_village_code_enrolled_as_a_formula_is_downloaded_as_text(town: TownApp, web) -> None:
    VillageDevice(town, village_code="=1+1").file("MZ-003")
    VillageDevice(town, village_code="@SUM(A1)").file("MZ-003")
    response = client_for(web, "zhao").get("/figures.csv", params={"by": "village"})
    assert response.status_code == 200
    first_cells = sorted(r[0] for r in _csv_rows(response.text)[1:])
    assert first_cells == ["'=1+1", "'@SUM(A1)"]


@pytest.mark.parametrize("prefix", FORMULA_PREFIXES)
def test_every_formula_prefix_is_neutralised_and_plain_cells_are_kept(prefix: str) -> None:
    assert neutralise_formula(f"{prefix}cmd|' /C calc'!A0") == f"'{prefix}cmd|' /C calc'!A0"
    assert neutralise_formula("东山村") == "东山村" and neutralise_formula(3) == 3
    row = Figures(key=f"{prefix}HYPERLINK(\"http://x\")")
    assert _csv_rows(to_csv([row]))[1][0].startswith("'")


def test_the_provincial_feed_csv_writes_typed_text_starting_with_a_formula_prefix_as_text() -> None:
    from town_center.evaluation_cli import FEED_FIELDS, feed_csv

    row = {k: "" for k in FEED_FIELDS} | {"cursor": 7, "reason": "=HYPERLINK(\"http://x\")", "rectification": "-已整改",
                                         "valid": True}
    [header, cells] = _csv_rows(feed_csv([row]))
    got = dict(zip(header, cells, strict=True))
    assert got["reason"] == "'=HYPERLINK(\"http://x\")" and got["rectification"] == "'-已整改"
    assert got["cursor"] == "7" and got["valid"] == "true"
