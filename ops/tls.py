"""A small county CA and the certificates for the gRPC links between tiers, made with `cryptography`.

    .venv/bin/python -m ops.tls ca   --out-dir /root/quancheng-ca --name "某某县政务服务中心"
    .venv/bin/python -m ops.tls cert --ca-dir /root/quancheng-ca --name county-hub \\
        --host county.example.gov.cn --host 10.20.0.5 --out-dir /etc/quancheng/tls

`ca` writes `ca.crt` (hand it to every township and village laptop) and `ca.key` (keep it offline).
`cert` writes `NAME.crt` (the chain: leaf then CA) and `NAME.key`; every `--host` goes into the
subjectAltName (an IP address or a DNS name), and the certificate is good for both ends of a link
(serverAuth and clientAuth), so a township's one certificate serves its villages and, with mutual
TLS, identifies it to the county. Private keys are written 0600. Pure Python: runs on Windows too.

These certificates protect the link (confidentiality, and no probing or flooding by a network
attacker); the trust root for records remains the Ed25519 signatures and the fingerprint check.
"""
from __future__ import annotations

import argparse
import datetime as dt
import ipaddress
import sys
from collections.abc import Sequence
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from shared import cli_common
from shared.errors import SharedError
from shared.keys import write_private_file

__all__ = ["make_ca", "make_cert", "main"]

CA_DAYS = 20 * 365
CERT_DAYS = 3 * 365
# Backdated a little: a laptop whose clock runs a few hours behind must not see the certificate
# as "not yet valid" on the day it was issued.
_BACKDATE = dt.timedelta(days=2)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "quancheng-daiban"),
                      x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def make_ca(common_name: str = "quancheng county CA", *, days: int = CA_DAYS,
            now: dt.datetime | None = None) -> tuple[bytes, bytes]:
    """A self-signed CA certificate and its private key, both PEM."""
    now = now or dt.datetime.now(dt.UTC)
    key = ec.generate_private_key(ec.SECP256R1())
    name = _name(common_name)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _BACKDATE).not_valid_after(now + dt.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                         crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.PEM), _key_pem(key)


def _san(host: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        return x509.DNSName(host)


def make_cert(ca_cert_pem: bytes, ca_key_pem: bytes, common_name: str, hosts: Sequence[str], *,
              days: int = CERT_DAYS, now: dt.datetime | None = None) -> tuple[bytes, bytes]:
    """A certificate signed by the CA for `hosts` (IP addresses or DNS names), usable as server and
    as client; returns (chain PEM: leaf then CA, private key PEM)."""
    if not hosts:
        raise SharedError("请至少用 --host 写一个服务器地址（IP 或域名），村和乡镇按这个地址连接")
    now = now or dt.datetime.now(dt.UTC)
    ca_cert = x509.load_pem_x509_certificate(ca_cert_pem)
    ca_key = serialization.load_pem_private_key(ca_key_pem, password=None)
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder().subject_name(_name(common_name)).issuer_name(ca_cert.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - _BACKDATE).not_valid_after(now + dt.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=True,
                                         data_encipherment=False, key_agreement=False, key_cert_sign=False,
                                         crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
                           critical=False)
            .add_extension(x509.SubjectAlternativeName([_san(h.strip()) for h in hosts]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_cert.public_key()),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.PEM) + ca_cert_pem, _key_pem(key)


# ---------------------------------------------------------------- command line

_DESCRIPTION = """为县、乡镇之间的 gRPC 连接生成县级 CA 和服务器证书（TLS）。

示例：
  .venv/bin/python -m ops.tls ca --out-dir /root/quancheng-ca --name 某某县政务服务中心
  .venv/bin/python -m ops.tls cert --ca-dir /root/quancheng-ca --name county-hub \\
      --host county.example.gov.cn --host 10.20.0.5 --out-dir /etc/quancheng/tls

ca.key 是县级 CA 私钥：只放在管理员保管的离线位置，不要拷到服务器或笔记本上。"""


def _write_public(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def _refuse_overwrite(*paths: Path) -> None:
    for path in paths:
        if path.exists():
            raise SharedError(f"文件已存在，不会覆盖：{path}（如需重新签发，请先移走旧文件）")


def _cmd_ca(args: argparse.Namespace) -> int:
    out = Path(args.out_dir)
    cert_path, key_path = out / "ca.crt", out / "ca.key"
    _refuse_overwrite(cert_path, key_path)
    cert, key = make_ca(args.name, days=args.days)
    write_private_file(key_path, key)
    _write_public(cert_path, cert)
    print(f"已生成县级 CA：证书 {cert_path}（分发给各乡镇和村代办员笔记本），私钥 {key_path}（离线保管，权限 600）")
    return 0


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise SharedError(f"无法读取{what} {path}（{exc.strerror or exc.__class__.__name__}）") from exc


def _cmd_cert(args: argparse.Namespace) -> int:
    ca_dir, out = Path(args.ca_dir), Path(args.out_dir or args.ca_dir)
    cert_path, key_path = out / f"{args.name}.crt", out / f"{args.name}.key"
    _refuse_overwrite(cert_path, key_path)
    try:
        chain, key = make_cert(_read(ca_dir / "ca.crt", "CA 证书"), _read(ca_dir / "ca.key", "CA 私钥"),
                               args.name, args.host, days=args.days)
    except ValueError as exc:
        raise SharedError(f"CA 证书或私钥无效：{exc}") from exc
    write_private_file(key_path, key)
    _write_public(cert_path, chain)
    print(f"已签发证书 {cert_path}（地址：{'、'.join(args.host)}），私钥 {key_path}（权限 600）")
    print("私钥须归运行服务的用户所有：chown quancheng: " + str(key_path))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = cli_common.new_parser("python -m ops.tls", _DESCRIPTION)
    sub = cli_common.add_subparsers(parser)
    ca = cli_common.add_command(sub, "ca", "生成县级 CA（ca.crt 与 ca.key）")
    ca.add_argument("--out-dir", required=True, metavar="目录", help="输出目录")
    ca.add_argument("--name", default="quancheng county CA", metavar="名称", help="CA 名称，例如 某某县政务服务中心")
    ca.add_argument("--days", type=int, default=CA_DAYS, metavar="天数", help=f"有效期（默认 {CA_DAYS} 天）")
    ca.set_defaults(handler=_cmd_ca)
    cert = cli_common.add_command(sub, "cert", "用县级 CA 签发一张服务器证书（同时可作客户端证书）")
    cert.add_argument("--ca-dir", required=True, metavar="目录", help="ca.crt 与 ca.key 所在目录")
    cert.add_argument("--name", required=True, metavar="名称", help="证书名称，也是文件名，例如 county-hub、town-T01")
    cert.add_argument("--host", action="append", required=True, metavar="地址",
                      help="对方连接时使用的地址（IP 或域名），可重复")
    cert.add_argument("--out-dir", default=None, metavar="目录", help="输出目录（默认与 --ca-dir 相同）")
    cert.add_argument("--days", type=int, default=CERT_DAYS, metavar="天数", help=f"有效期（默认 {CERT_DAYS} 天）")
    cert.set_defaults(handler=_cmd_cert)
    return parser


def _main(argv: Sequence[str] | None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.handler(args))


def main(argv: Sequence[str] | None = None) -> int:
    return cli_common.run(_main, argv)


if __name__ == "__main__":
    sys.exit(main())
