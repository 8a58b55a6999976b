"""Running a tier's console (FastAPI app) with uvicorn in a thread beside its gRPC server."""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI

__all__ = ["ConsoleServer", "start_console_server"]


@dataclass
class ConsoleServer:
    server: Any
    thread: threading.Thread
    port: int

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def start_console_server(web: FastAPI, address: str, *, timeout_s: float = 15.0) -> ConsoleServer:
    """uvicorn in a daemon thread; returns once it listens (port 0 picks a free one)."""
    import uvicorn

    host, _, port = address.rpartition(":")
    config = uvicorn.Config(web, host=host or "127.0.0.1", port=int(port), access_log=False, log_config=None,
                            log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="console-web", daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout_s
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            server.should_exit = True
            raise RuntimeError(f"网页服务未能在 {address} 启动")
        time.sleep(0.02)
    bound = server.servers[0].sockets[0].getsockname()[1]
    return ConsoleServer(server, thread, int(bound))
