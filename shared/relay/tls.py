"""TLS for the gRPC link between tiers: what a server listens with and what a client trusts.

The Ed25519 signatures remain the trust root for records: a record is accepted because its
author's key was approved after a fingerprint check, never because of the connection it came on.
TLS protects the link itself: nobody on the network reads the (already sealed) traffic or its
metadata, and nobody who cannot complete a handshake gets to probe the relay or tie up its streams.

Every file is read and checked once, when the settings are built (at start-up), so a wrong path or
a swapped file stops the command with a Chinese message naming the file, instead of surfacing later
as an opaque handshake failure. `grpc` is given the PEM bytes, not paths.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import grpc
from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization

from shared.errors import KeyFileError
from shared.keys import check_private_file_mode
from shared.os_errors import os_error_zh
from shared.relay.errors import TlsConfigError

__all__ = ["ServerTls", "ClientTls", "read_ca_file", "check_ca_pem", "handshake_problem_zh", "describe_link_security"]


def _read(path: Path, what: str) -> bytes:
    try:
        data = path.read_bytes()
    except FileNotFoundError as exc:
        raise TlsConfigError(f"找不到{what}：{path}") from exc
    except IsADirectoryError as exc:
        raise TlsConfigError(f"{what} {path} 是一个目录，请给出文件路径") from exc
    except PermissionError as exc:
        raise TlsConfigError(f"无法读取{what} {path}：权限不足（运行服务的用户须能读取此文件）") from exc
    except OSError as exc:
        raise TlsConfigError(f"无法读取{what} {path}（{os_error_zh(exc)}）") from exc
    if not data.strip():
        raise TlsConfigError(f"{what} {path} 是空文件")
    return data


def _certificates(data: bytes, source: str, what: str) -> list[x509.Certificate]:
    try:
        certs = x509.load_pem_x509_certificates(data)
    except ValueError as exc:
        raise TlsConfigError(f"{what} {source} 不是有效的 PEM 证书（应以 -----BEGIN CERTIFICATE----- 开头）") from exc
    if not certs:
        raise TlsConfigError(f"{what} {source} 中没有证书")
    return certs


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False


def check_ca_pem(data: bytes, source: str) -> bytes:
    """The CA bundle as clean PEM (just the certificates: any text around them, such as
    `openssl x509 -text` output, is dropped, so it can be kept as ASCII) if it holds at least one
    CA certificate; else `TlsConfigError`."""
    certs = _certificates(data, source, "CA 证书文件")
    if not any(_is_ca(c) for c in certs):
        raise TlsConfigError(f"CA 证书文件 {source} 中没有 CA 证书：请使用签发服务器证书的 CA 证书"
                             f"（ops/tls.py 生成的 ca.crt），而不是服务器证书本身")
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs)


def read_ca_file(path: Path | str) -> bytes:
    """Read and check a CA certificate file (PEM)."""
    path = Path(path)
    return check_ca_pem(_read(path, "CA 证书文件"), str(path))


def _identity(cert_file: Path, key_file: Path, *, now: dt.datetime | None) -> tuple[bytes, bytes]:
    """The (certificate chain, private key) PEM pair, checked: readable, owner-only key, matching, in date."""
    chain = _read(cert_file, "证书文件")
    leaf = _certificates(chain, str(cert_file), "证书文件")[0]
    try:
        check_private_file_mode(key_file, "TLS 私钥文件")
    except KeyFileError as exc:
        raise TlsConfigError(str(exc)) from exc
    key_pem = _read(key_file, "TLS 私钥文件")
    try:
        key = serialization.load_pem_private_key(key_pem, password=None)
    except TypeError as exc:
        raise TlsConfigError(f"TLS 私钥文件 {key_file} 有口令保护，gRPC 需要未加密的 PEM 私钥"
                             f"（openssl pkey -in 原文件 -out 新文件，并 chmod 600 新文件）") from exc
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise TlsConfigError(f"TLS 私钥文件 {key_file} 不是有效的 PEM 私钥") from exc
    spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    if leaf.public_key().public_bytes(*spki) != key.public_key().public_bytes(*spki):
        raise TlsConfigError(f"TLS 私钥 {key_file} 与证书 {cert_file} 不配套：请使用同一次签发生成的证书和私钥")
    now = now or dt.datetime.now(dt.UTC)
    if leaf.not_valid_after_utc < now:
        raise TlsConfigError(f"证书 {cert_file} 已于 {leaf.not_valid_after_utc:%Y-%m-%d} 过期，请重新签发（python -m ops.tls cert）")
    if leaf.not_valid_before_utc > now:
        raise TlsConfigError(f"证书 {cert_file} 要到 {leaf.not_valid_before_utc:%Y-%m-%d} 才生效：请检查本机时间")
    return chain, key_pem


def _opt_path(value: Path | str | None) -> Path | None:
    # Empty strings count as absent: systemd environment files leave unused settings empty.
    return Path(value) if value not in (None, "") else None


@dataclass(frozen=True)
class ServerTls:
    """What a relay server listens with; with `client_ca`, clients must present a certificate it signed."""

    cert_chain: bytes
    private_key: bytes
    client_ca: bytes | None = None

    @classmethod
    def from_files(cls, cert_file: Path | str | None, key_file: Path | str | None,
                   client_ca_file: Path | str | None = None, *, now: dt.datetime | None = None) -> ServerTls | None:
        """Checked settings, or None when no TLS option was given (plain text, for loopback)."""
        cert, key, client_ca = _opt_path(cert_file), _opt_path(key_file), _opt_path(client_ca_file)
        if cert is None and key is None:
            if client_ca is not None:
                raise TlsConfigError("--tls-client-ca 需要同时指定 --tls-cert 和 --tls-key")
            return None
        if cert is None or key is None:
            raise TlsConfigError("--tls-cert 和 --tls-key 须同时指定")
        chain, key_pem = _identity(cert, key, now=now)
        return cls(chain, key_pem, read_ca_file(client_ca) if client_ca is not None else None)

    @property
    def mutual(self) -> bool:
        return self.client_ca is not None

    def credentials(self) -> grpc.ServerCredentials:
        return grpc.ssl_server_credentials([(self.private_key, self.cert_chain)], root_certificates=self.client_ca,
                                           require_client_auth=self.client_ca is not None)


@dataclass(frozen=True)
class ClientTls:
    """What a relay client trusts (`root_ca`), optionally who it is (mutual TLS), and the name the
    server's certificate must carry when it differs from the host dialled (`server_name`)."""

    root_ca: bytes
    cert_chain: bytes | None = None
    private_key: bytes | None = None
    server_name: str = ""

    @classmethod
    def from_pem(cls, root_ca: bytes | str, *, cert_file: Path | str | None = None, key_file: Path | str | None = None,
                 server_name: str = "", source: str = "CA 证书", now: dt.datetime | None = None) -> ClientTls:
        ca = check_ca_pem(root_ca.encode("utf-8") if isinstance(root_ca, str) else root_ca, source)
        cert, key = _opt_path(cert_file), _opt_path(key_file)
        if (cert is None) != (key is None):
            raise TlsConfigError("客户端证书和私钥须同时指定")
        chain, key_pem = _identity(cert, key, now=now) if cert is not None and key is not None else (None, None)
        return cls(ca, chain, key_pem, server_name.strip())

    @classmethod
    def from_files(cls, ca_file: Path | str, *, cert_file: Path | str | None = None, key_file: Path | str | None = None,
                   server_name: str = "", now: dt.datetime | None = None) -> ClientTls:
        return cls.from_pem(_read(Path(ca_file), "CA 证书文件"), cert_file=cert_file, key_file=key_file,
                            server_name=server_name, source=str(ca_file), now=now)

    def credentials(self) -> grpc.ChannelCredentials:
        return grpc.ssl_channel_credentials(root_certificates=self.root_ca, private_key=self.private_key,
                                            certificate_chain=self.cert_chain)

    def channel_options(self) -> list[tuple[str, str]]:
        return [("grpc.ssl_target_name_override", self.server_name)] if self.server_name else []


_LOOPBACK = ("127.0.0.1", "localhost", "[::1]", "::1")


def describe_link_security(host: str, tls: ServerTls | None) -> str:
    """The start-up line an operator reads: is the relay encrypted, and is that a problem here."""
    if tls is not None:
        return "同步连接已加密（TLS" + ("，要求客户端证书" if tls.mutual else "") + "）"
    if host in _LOOPBACK or host.startswith("127."):
        return "同步连接未加密（仅本机监听）"
    return ("警告：同步连接未加密，且监听的不是本机地址。网络上的任何人都能看到连接并探测服务；"
            "请用 --tls-cert 和 --tls-key 启用 TLS（见 ops/运维指南.md）")


# Fragments of gRPC's status details when the TLS layer, not the peer's process, failed the call.
_HANDSHAKE_MARKERS = ("handshake failed", "ssl_error", "certificate_verify_failed", "hostname verification",
                      "tsi_protocol_failure")
# A plain-text client dialling a TLS server, or a client without an accepted certificate dialling a
# server that requires one, sees only this: the server drops the connection during the handshake.
_CLOSED_AT_CONNECT = ("failed to connect to all addresses", "socket closed")


def handshake_problem_zh(detail: str | None, *, tls: bool, peer_label_zh: str) -> str | None:
    """A Chinese explanation when an UNAVAILABLE status came from the TLS layer, else None."""
    text = (detail or "").lower()
    if any(m in text for m in _HANDSHAKE_MARKERS):
        if "wrong_version_number" in text or "packet_length_too_long" in text:
            return (f"无法连接{peer_label_zh}：本机使用加密连接（TLS），对方没有启用 TLS"
                    f"（请核对地址与端口，或请对方用 --tls-cert/--tls-key 启动）")
        return (f"无法连接{peer_label_zh}：加密连接（TLS）握手失败。对方证书不是由本机信任的 CA 签发、"
                f"不含所连接的地址、已过期，或本机日期不对；请核对 CA 证书文件、服务器地址和本机日期")
    if all(m in text for m in _CLOSED_AT_CONNECT):
        if not tls:
            return (f"无法连接{peer_label_zh}：连接刚建立就被对方关闭。对方很可能要求加密连接（TLS），"
                    f"本机未配置 CA 证书（村代办员笔记本：village-agent set-township-ca；"
                    f"乡镇：town-center county link --county-ca）")
        return (f"无法连接{peer_label_zh}：连接刚建立就被对方关闭。对方很可能要求客户端证书（双向 TLS），"
                f"本机未提供，或提供的证书不是对方信任的 CA 签发的")
    return None
