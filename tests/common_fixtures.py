"""Fixtures and helpers every test package shares, registered for all tests by `tests/conftest.py`
(`pytest_plugins`): a test names `clock` as a parameter and gets it, without importing it.

* ``clock`` (function): a `FakeClock` at Monday 23 November 2026, 09:00 in Beijing, a working day;
  it refuses to go backwards (docs/ARCHITECTURE.md, invariant 11).
* ``free_port()``: a TCP port on 127.0.0.1 that nothing listens on, for a process started by the test
  (servers inside the test process bind port 0 instead and report the port they got).
"""
from __future__ import annotations

import socket

import pytest

from shared.clock import FakeClock
from tests.town_fixtures import MONDAY_9AM

__all__ = ["clock", "free_port"]


@pytest.fixture()
def clock() -> FakeClock:
    return FakeClock(MONDAY_9AM)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
