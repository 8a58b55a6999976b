"""What the township's and the county's document services share (`town_center.documents.TownDocuments`,
`hub.documents.CountyDocuments`): the matter page's list, the stored print, the archive PDF, verifying
a number (its own archive first, then the documents other tiers signed into their chains and it
received: docs/wire-v1.md "Written documents"), and keeping such a received record. Each tier says
how to open its store's engine and how to name the keys whose documents it receives."""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

from sqlalchemy import Connection, Engine, select

from shared.clock import from_unix_ms
from shared.console.store import staff as staff_table
from shared.documents.adapters import sql
from shared.documents.adapters.archive import ISSUER_META, DocumentArchive, DocumentListing, IssuerSettings
from shared.documents.chain import ReceivedDocument, received_from_record, received_verification
from shared.documents.content import short_hash
from shared.documents.errors import DocumentNotFound
from shared.documents.signed import IssuedDocument, Verification
from shared.wire.v1 import records_pb2

__all__ = ["TierDocuments"]


class TierDocuments(ABC):
    archive: DocumentArchive
    # On paper when a staff account has no display name (people by name, never by login).
    colleague_zh: str = "工作人员"

    @abstractmethod
    def _store(self) -> Any:
        """The tier's store (its `engine` holds the archive and the received documents)."""

    @abstractmethod
    def _issuers(self, conn: Connection) -> dict[str, str]:
        """Who signed the documents this tier receives, by key id, as a person reads it."""

    @property
    def _engine(self) -> Engine:
        return self._store().engine

    def configured_settings(self, conn: Connection | None) -> IssuerSettings | None:
        """The name, seal text and number prefix set with `document issuer`, or None until set."""
        store = self._store()
        text = store.get_meta_in(conn, ISSUER_META) if conn is not None else store.get_meta(ISSUER_META)
        return IssuerSettings.from_json(text) if text else None

    def _name(self, conn: Connection, staff_id: str) -> str:
        """A colleague's name as the console knows it."""
        if not staff_id:
            return ""
        name = conn.execute(select(staff_table.c.display_name).where(staff_table.c.staff_id == staff_id)).scalar()
        return str(name) if name else self.colleague_zh

    def of_matter(self, matter_id: str) -> list[DocumentListing]:
        with self._engine.connect() as conn:
            rows = sql.documents_of_matter(conn, matter_id)
        return [DocumentListing(r.number, r.title, from_unix_ms(int(r.issued_at_ms)), short_hash(r.content_hash),
                                bool(r.has_pdf)) for r in rows]

    def load(self, number: str) -> IssuedDocument:
        with self._engine.connect() as conn:
            return self.archive.load(conn, number)

    def pdf(self, number: str) -> bytes:
        with self._engine.begin() as conn:
            return self.archive.archive_pdf(conn, number)

    def verify(self, number: str, *, typed_hash: str = "", deep: bool = False) -> Verification:
        """A document of this tier from its archive; otherwise another tier's, against what its issuer
        signed into its chain (`received`)."""
        with self._engine.connect() as conn:
            try:
                return self.archive.verify(conn, number, typed_hash=typed_hash, deep=deep)
            except DocumentNotFound:
                return received_verification(self.received(conn, number), typed_hash=typed_hash)

    def received(self, conn: Connection, number: str) -> list[ReceivedDocument]:
        return sql.load_received(conn, number, self._issuers(conn))

    def take_in(self, conn: Connection, body: records_pb2.DocumentIssued, *, key_id: str, seq: int,
                received_at_ms: int) -> None:
        """Another tier's `DocumentIssued`, kept where verification finds it (the intake calls this).
        A malformed one raises ValueError: the intake notes it and goes on."""
        sql.save_received(conn, received_from_record(body, issuer_name="", author_key_id=key_id, seq=seq),
                          received_at_ms=received_at_ms)

    def after_commit(self) -> None:
        """Archive the PDFs of the documents the action just committed (outside its transaction)."""
        self.archive.archive_pending(self._engine)
