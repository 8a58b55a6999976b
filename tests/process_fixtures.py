"""Real processes on loopback for end-to-end tests: the installed `county-hub`, `town-center` and
`village-agent` commands, and a small HTTP client that signs in to a console like a browser does
(login form, session cookie, CSRF token) and posts its forms."""
from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx

from tests.common_fixtures import free_port
from tests.village_fixtures import PASSPHRASE

BIN = Path(sys.executable).parent
STAFF_PASSWORD = "Staff-pass-2026"
ENV = dict(os.environ, QUANCHENG_PASSPHRASE=PASSPHRASE, QUANCHENG_STAFF_PASSWORD=STAFF_PASSWORD)
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
_VERSION = re.compile(r'name="expected_version" value="(\d+)"')

__all__ = ["BIN", "ENV", "STAFF_PASSWORD", "free_port", "run", "Served", "ConsoleClient", "village"]


def run(cmd: Sequence[str], *, stdin: str | None = None, timeout: float = 120, check: bool = True,
        passphrase: str | None = None) -> subprocess.CompletedProcess[str]:
    env = ENV if passphrase is None else dict(ENV, QUANCHENG_PASSPHRASE=passphrase)
    done = subprocess.run([str(c) for c in cmd], input=stdin, capture_output=True, text=True, timeout=timeout, env=env)
    if check and done.returncode != 0:
        raise AssertionError(f"{' '.join(map(str, cmd))} exited {done.returncode}:\n{done.stdout}\n{done.stderr}")
    return done


class Served:
    """A `serve` process; stopped with SIGTERM (as systemd does), killed only if it will not stop."""

    def __init__(self, cmd: Sequence[str], log_path: Path, ports: Sequence[int]) -> None:
        self.cmd = [str(c) for c in cmd]
        self.log_path = log_path
        self.ports = list(ports)
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 40) -> Served:
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(self.cmd, env=ENV, stdout=self._log, stderr=subprocess.STDOUT)
        end = time.monotonic() + timeout
        for port in self.ports:
            while True:
                if self.proc.poll() is not None:
                    raise AssertionError(f"{self.cmd[0]} exited early:\n{self.log_path.read_text(errors='replace')}")
                with socket.socket() as s:
                    if s.connect_ex(("127.0.0.1", port)) == 0:
                        break
                if time.monotonic() > end:
                    raise AssertionError(f"{self.cmd[0]} did not listen on {port}")
                time.sleep(0.1)
        return self

    def stop(self, timeout: float = 20) -> int:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired as exc:
            self.proc.kill()
            self.proc.wait(10)
            raise AssertionError(f"{self.cmd[0]} did not stop within {timeout}s after SIGTERM") from exc
        finally:
            self._log.close()


class ConsoleClient:
    """Signs in to a console and drives its forms, as a member of staff in a browser would."""

    def __init__(self, base_url: str, staff_id: str, password: str = STAFF_PASSWORD) -> None:
        self.http = httpx.Client(base_url=base_url, timeout=20, follow_redirects=True)
        login = self.http.get("/login")
        token = _CSRF.search(login.text)
        assert token, login.text[:500]
        page = self.http.post("/login", data={"csrf_token": token.group(1), "staff_id": staff_id, "password": password,
                                              "next": "/"})
        assert page.status_code == 200 and "退出" in page.text, page.text[:800]
        self.csrf = _CSRF.search(page.text).group(1) if _CSRF.search(page.text) else ""

    def get(self, path: str) -> httpx.Response:
        return self.http.get(path)

    def wait_for(self, path: str, text: str = "", timeout: float = 30) -> httpx.Response:
        end = time.monotonic() + timeout
        while True:
            page = self.http.get(path)
            if page.status_code == 200 and text in page.text:
                return page
            if time.monotonic() > end:
                raise AssertionError(f"{path} never showed {text!r}: {page.status_code} {page.text[:600]}")
            time.sleep(0.3)

    def post(self, path: str, data: dict[str, Any], *, version_from: str | None = None) -> httpx.Response:
        fields = dict(data)
        if version_from is not None:
            page = self.http.get(version_from)
            found = _VERSION.search(page.text)
            assert found, page.text[:800]
            fields["expected_version"] = found.group(1)
        response = self.http.post(path, data=fields, headers={"X-CSRF-Token": self.csrf})
        assert response.status_code == 200, f"{path}: {response.status_code} {response.text[:1000]}"
        return response

    def close(self) -> None:
        self.http.close()


def village(data: Path, *args: str, stdin: str | None = None, check: bool = True, passphrase: str | None = None) -> Any:
    """Run `village-agent <args> --data <data> --json` and return the parsed JSON."""
    done = run([BIN / "village-agent", *args, "--data", data, "--json"], stdin=stdin, check=check, passphrase=passphrase)
    return json.loads(done.stdout) if done.stdout.strip().startswith(("{", "[")) else done.stdout
