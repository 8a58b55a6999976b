"""A township publishes a new service catalogue: validated first, signed, sent to every village,
and taken up by the township's own handling (also by another process on the same database)."""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from shared.catalog import shipped_catalog_text
from shared.domain.catalog import parse_catalog
from shared.envelope import open_record
from shared.errors import CatalogError
from tests.town_fixtures import VillageDevice, township
from town_center.bootstrap import TownApp


@pytest.fixture
def app(tmp_path: Path) -> Iterator[TownApp]:
    app = township(f"sqlite:///{tmp_path / 'town.db'}")
    yield app
    app.close()


def next_version(text: str, version: str) -> str:
    return text.replace('version = "2026.1"', f'version = "{version}"', 1)


def test_a_published_catalogue_reaches_every_village_signed_by_the_township(app: TownApp) -> None:
    village = VillageDevice(app)
    catalog = app.services.publish_catalog(next_version(shipped_catalog_text(), "2026.5"), by="站长")
    envelopes, _ = app.store.read(village.signer.key_id, 0, 100)
    updates = [open_record(e).catalog_update for e in envelopes if open_record(e).WhichOneof("body") == "catalog_update"]
    assert [u.version for u in updates] == ["2026.5"] and envelopes[-1].key_id == app.signer.key_id
    assert len(parse_catalog(updates[0].catalog_toml.decode("utf-8"))) == len(catalog)


def test_the_townships_handling_takes_up_the_new_catalogue(app: TownApp) -> None:
    assert app.handling.catalog.version == "2026.1"
    app.services.publish_catalog(next_version(shipped_catalog_text(), "2026.2"), by="站长")
    assert app.handling.refresh_catalog() and app.handling.catalog.version == "2026.2"
    assert not app.handling.refresh_catalog()


def catalogue_updates(app: TownApp, village: VillageDevice) -> list[str]:
    return [open_record(e).catalog_update.version for e in app.store.read(village.signer.key_id, 0, 100)[0]
            if open_record(e).WhichOneof("body") == "catalog_update"]


def test_an_invalid_catalogue_is_refused_naming_the_problem_and_nothing_is_sent(app: TownApp) -> None:
    village = VillageDevice(app)
    with pytest.raises(CatalogError, match="TOML"):
        app.services.publish_catalog("[[items]\ncode = ", by="站长")
    assert catalogue_updates(app, village) == [] and app.handling.catalog.version == "2026.1"


def test_a_version_can_be_published_only_once(app: TownApp) -> None:
    village = VillageDevice(app)
    text = next_version(shipped_catalog_text(), "2026.3")
    app.services.publish_catalog(text, by="站长")
    with pytest.raises(CatalogError, match="已发布过"):
        app.services.publish_catalog(text, by="站长")
    assert catalogue_updates(app, village) == ["2026.3"]


def test_the_catalog_publish_command_names_the_bad_field_in_chinese_and_publishes_a_good_file(tmp_path: Path, capsys) -> None:
    import os

    from shared import cli_common
    from town_center import cli

    os.environ[cli_common.PASSPHRASE_ENV] = "测试口令-足够长的口令"
    try:
        home = tmp_path / "town"
        assert cli.main(["init", "--home", str(home)]) == 0
        bad = tmp_path / "bad.toml"
        bad.write_text(shipped_catalog_text().replace('version = "2026.1"', 'version = ""', 1), encoding="utf-8")
        assert cli.main(["catalog", "publish", str(bad), "--home", str(home), "--by", "站长"]) != 0
        assert "version" in capsys.readouterr().err
        good = tmp_path / "good.toml"
        good.write_text(next_version(shipped_catalog_text(), "2026.5"), encoding="utf-8")
        assert cli.main(["catalog", "publish", str(good), "--home", str(home), "--by", "站长"]) == 0
        assert "2026.5" in capsys.readouterr().out
    finally:
        os.environ.pop(cli_common.PASSPHRASE_ENV, None)
