"""A county on a real store with a real gRPC server on port 0, and townships linked to it through
the shared relay (their own link key, outbox and sync client), all on one fake clock."""
from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest

from hub.bootstrap import HubApp
from hub.bootstrap import build_app as build_hub
from shared.calendar import WorkingCalendar
from shared.clock import FakeClock
from shared.domain.handling import Actor, Role
from shared.relay.client import ClientLimits, RelayClient
from shared.relay.server import build_server
from shared.retry import RetryPolicy
from shared.signing import Signer
from town_center.bootstrap import TownApp, link_county
from town_center.bootstrap import build_app as build_town

COUNTY_STAFF = Actor("chen", Role.DIRECTOR)


@dataclass
class County:
    app: HubApp
    server: grpc.Server
    port: int

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def close(self) -> None:
        self.server.stop(grace=None)
        self.app.close()


def county(db_url: str, clock: FakeClock, *, signer: Signer | None = None, port: int = 0) -> County:
    app = build_hub(db_url, signer or Signer.generate(), clock=clock, calendar=WorkingCalendar())
    server, bound = build_server(app.core, f"127.0.0.1:{port}")
    server.start()
    return County(app, server, bound)


@dataclass
class LinkedTownship:
    app: TownApp
    client: RelayClient

    def sync(self) -> None:
        """One push-and-pull with the county, then fold what came back."""
        self.app.intake.run_once()
        self.client.sync_once()
        assert self.app.county_link is not None
        self.app.county_link.fold()


def linked_township(path: Path, clock: FakeClock, county_: County, *, code: str = "T01", name: str = "青山镇",
                    address: str | None = None, approve: bool = True) -> LinkedTownship:
    db_url = f"sqlite:///{path}"
    link_signer = Signer.generate()
    link_county(db_url, link_signer, address=address or county_.address, county_public_key=county_.app.signer.public_key,
                township_code=code, township_name=name)
    app = build_town(db_url, Signer.generate(), clock=clock, calendar=WorkingCalendar(), link_signer=link_signer)
    assert app.county_link is not None
    client = RelayClient(address or county_.address, app.county_link.outbox, link_signer, clock,
                         limits=ClientLimits(push_deadline_s=5, unary_deadline_s=3),
                         policy=RetryPolicy(initial_s=0.05, cap_s=0.5), peer_label_zh="县级服务器")
    app.county_link.client = client
    township = LinkedTownship(app, client)
    client.sync_once()    # the link key's enrollment reaches the county, pending
    if approve:
        county_.app.store.approve(link_signer.key_id, by="chen", now_ms=0)
        township.sync()
    return township


def advance(clock: FakeClock, **kw: float) -> dt.datetime:
    clock.advance(dt.timedelta(**kw))
    return clock.now()


# ---------------------------------------------------------------- pytest fixtures (a plugin: tests/conftest.py)
# `clock` is tests.common_fixtures'.

@pytest.fixture()
def hub(tmp_path: Path, clock: FakeClock) -> Iterator[County]:
    c = county(f"sqlite:///{tmp_path / 'county.db'}", clock)
    yield c
    c.close()


@pytest.fixture()
def town(tmp_path: Path, clock: FakeClock, hub: County) -> Iterator[LinkedTownship]:
    t = linked_township(tmp_path / "town.db", clock, hub)
    yield t
    t.client.stop()
    t.app.close()
