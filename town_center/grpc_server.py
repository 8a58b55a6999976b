"""The township's gRPC server: thin. The relay core does the work; this only wires the bounds."""
from __future__ import annotations

import grpc

from shared.relay.server import RelayCore, build_server
from shared.relay.tls import ServerTls

__all__ = ["create_server"]


def create_server(core: RelayCore, address: str = "127.0.0.1:0", *, tls: ServerTls | None = None) -> tuple[grpc.Server, int]:
    """A configured, not yet started server and the port it bound (bind port 0 in tests); TLS with `tls`."""
    return build_server(core, address, tls=tls)
