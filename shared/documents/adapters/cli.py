"""`document verify` and `document issuer` for the township's and the county's CLIs: the same
commands and messages at both tiers; each tier passes how to open its store and read its public key."""
from __future__ import annotations

import argparse
import base64
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import Connection, Engine

from shared import cli_common
from shared.documents.adapters import sql
from shared.documents.adapters.archive import ISSUER_META, IssuerSettings
from shared.documents.chain import ReceivedDocument, received_verification
from shared.documents.content import normalise_hash
from shared.documents.errors import DocumentInvalid, DocumentNotFound
from shared.documents.numbering import parse_number
from shared.documents.signed import IssuedDocument, verify_document, with_pdf_check
from shared.errors import KeyFileError
from shared.signing import key_id_for

__all__ = ["add_document_commands", "public_key_of_key_file"]


def public_key_of_key_file(path: Path) -> bytes:
    """The public half of a tier's key file, readable without the passphrase (verifying needs no secret)."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        key = base64.b64decode(doc["public_key"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise KeyFileError(f"无法读取密钥文件 {path} 中的公钥，请检查 --home 是否正确") from exc
    if len(key) != 32:
        raise KeyFileError(f"密钥文件 {path} 中的公钥长度不对")
    return key


class _TierStore(Protocol):
    """What the CLI needs of a tier's store (`TownStore`, `HubStore`)."""

    engine: Engine

    def set_meta(self, key: str, value: str) -> None: ...
    def close(self) -> None: ...


def add_document_commands(subparsers: Any, *, tier_zh: str, add_home: Callable[[argparse.ArgumentParser], None],
                          db_url: Callable[[argparse.Namespace], str], open_store: Callable[[str], _TierStore],
                          key_file_name: str, verify_hint: str,
                          received_issuers: Callable[[Any, Connection], dict[str, str]]) -> None:
    """`document verify|issuer` for a tier: `open_store(db_url)` opens its store, `key_file_name` (under
    --home) holds its public key, `received_issuers(store, conn)` names the keys of the tiers whose
    documents it receives (a laptop's agent, a township, the county)."""
    documents = cli_common.add_command(subparsers, "document", f"{tier_zh}签发的文书：核验真伪，设置落款名称、印章文字和文号代字")
    sub = documents.add_subparsers(dest="document_command", metavar="<操作>", required=True)
    verify = cli_common.add_command(sub, "verify", "按文书编号核验一份文书：本机关签发的，核对内容、打印件、存档 PDF 与电子签名；"
                                                   "下级（或县级）签名报送的，核对校验码或所给的文件")
    add_home(verify)
    verify.add_argument("number", metavar="文书编号", help="文书上印的编号，如 青石镇便民中心〔2026〕受字第12号")
    verify.add_argument("--code", default="", metavar="校验码", help="文书上印的 16 位校验码或 64 位完整哈希（可选）")
    verify.add_argument("--pdf", default=None, metavar="文件", help="核对一份 PDF 文件是否就是签发的那一份（可选）")
    verify.add_argument("--html", default=None, metavar="文件", help="核对一份打印页（HTML 文件）是否就是签发的那一份（可选）")

    def read(path: str | None, what: str) -> bytes | None:
        if not path:
            return None
        try:
            return Path(path).read_bytes()
        except OSError as exc:
            raise DocumentInvalid(f"无法读取{what}文件 {path}") from exc

    def run_verify(args: argparse.Namespace) -> int:
        number = parse_number(args.number).text
        typed = normalise_hash(args.code) if args.code else ""
        pdf_bytes, html_bytes = read(args.pdf, " PDF "), read(args.html, " HTML ")
        store = open_store(db_url(args))
        try:
            with store.engine.connect() as conn:
                try:
                    doc: IssuedDocument | None = sql.load_document(conn, number)
                    received: list[ReceivedDocument] = []
                except DocumentNotFound:
                    doc, received = None, sql.load_received(conn, number, received_issuers(store, conn))
        finally:
            store.close()
        from shared.documents.adapters.pdf import html_in_pdf, html_to_pdf

        problems: list[str] = []
        if doc is None:
            # Another tier's document: checked against the record its issuer signed into its chain.
            result = received_verification(received, typed_hash=typed, html=html_bytes, pdf=pdf_bytes,
                                           pdf_html=html_in_pdf, render_pdf=html_to_pdf)
            extra_checks: list[str] = []
        else:
            key = public_key_of_key_file(Path(args.home) / key_file_name)
            result = verify_document(doc, {key_id_for(key): key}, typed_hash=typed)
            if doc.pdf is not None:
                result = with_pdf_check(result, doc, html_to_pdf)
            extra_checks = []
            if pdf_bytes is not None:
                if pdf_bytes == doc.pdf:
                    extra_checks.append("所给的 PDF 文件与存档 PDF 逐字节相同")
                else:
                    problems.append("所给的 PDF 文件与存档的 PDF 不是同一份（内容不同）")
            if html_bytes is not None:
                if html_bytes == doc.html.encode("utf-8"):
                    extra_checks.append("所给的打印页（HTML）与签发时逐字节相同")
                else:
                    problems.append("所给的打印页（HTML）与签发时的不是同一份（内容不同）")
        problems = [*result.problems, *problems]
        print(f"文书：{result.title}　编号：{result.number}")
        print(f"签发机关：{result.issuer_name}　签发日期：{result.issued_on_zh}")
        for check in (*result.checks, *extra_checks):
            print(f"  ✓ {check}")
        if problems:
            for p in problems:
                print(f"  ✗ {p}")
            print("核验未通过：该文书不可信。")
            return 1
        print("核验通过：文书真实有效，与签发时一致。")
        return 0

    verify.set_defaults(handler=run_verify)

    issuer = cli_common.add_command(sub, "issuer", "设置文书落款名称、印章文字和文号机关代字（此后签发的文书使用新设置）")
    add_home(issuer)
    issuer.add_argument("--name", required=True, metavar="名称", help="落款名称，如 青石镇便民服务中心")
    issuer.add_argument("--seal", required=True, metavar="文字", help="印章文字，如 青石镇人民政府便民服务中心")
    issuer.add_argument("--prefix", required=True, metavar="代字",
                        help="文号机关代字，如 青石镇便民中心（文号：青石镇便民中心〔2026〕受字第1号）")

    def run_issuer(args: argparse.Namespace) -> int:
        name, seal, prefix = args.name.strip(), args.seal.strip(), args.prefix.strip()
        if not name or not seal or not prefix:
            raise DocumentInvalid("请填写文书落款名称、印章文字和文号机关代字")
        if len(prefix) > 40 or any(ch in prefix for ch in "〔〕[]()（）"):
            raise DocumentInvalid("文号机关代字不能超过 40 个字，且不能含括号")
        store = open_store(db_url(args))
        try:
            store.set_meta(ISSUER_META, IssuerSettings(name[:60], seal[:60], prefix, verify_hint).to_json())
        finally:
            store.close()
        print(f"已设置：落款 {name}，印章文字 {seal}，文号如 {prefix}〔年份〕受字第1号。此后签发的文书使用新设置。")
        return 0

    issuer.set_defaults(handler=run_issuer)
