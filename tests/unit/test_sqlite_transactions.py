"""How the SQLite stores begin their transactions (shared.sqlite): reads never take or wait for the
write lock, writers queue first come first served, and a failed write leaves the line free."""
from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.exc import IntegrityError

from shared.sqlite import WriterLine, configure_sqlite


def _engine(path: Path, busy_timeout_ms: int = 5_000) -> Engine:
    engine = create_engine(f"sqlite:///{path}", pool_size=4, max_overflow=4)
    return configure_sqlite(engine, busy_timeout_ms=busy_timeout_ms)


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "store.db"
    engine = _engine(path)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE tip (key TEXT PRIMARY KEY, seq INTEGER NOT NULL)"))
        conn.execute(text("INSERT INTO tip VALUES ('a', 1)"))
    engine.dispose()
    return path


def test_a_read_runs_while_another_connection_holds_the_write_lock(db: Path) -> None:
    engine = _engine(db)
    with engine.begin() as writer:
        writer.execute(text("UPDATE tip SET seq = 2"))          # holds the write lock, not committed
        with engine.connect() as reader:                          # the relay's read of an author's tip
            seq = reader.execute(text("SELECT seq FROM tip WHERE key = 'a'")).scalar()
            in_tx = reader.exec_driver_sql("SELECT 1").scalar()
        # A second process's reader too: a plain deferred read beside the held write lock.
        other = sqlite3.connect(db, timeout=0.1)
        assert other.execute("SELECT seq FROM tip").fetchone() == (1,)
        other.close()
    assert seq == 1 and in_tx == 1      # the snapshot before the uncommitted write, read at once
    engine.dispose()


def test_an_explicit_transaction_takes_the_write_lock_at_its_start(db: Path) -> None:
    engine = _engine(db)
    other_process = sqlite3.connect(db, timeout=0.2, isolation_level=None)
    with engine.begin() as conn:
        conn.execute(text("SELECT seq FROM tip")).all()          # only a read so far, yet the lock is held
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            other_process.execute("BEGIN IMMEDIATE")
    other_process.execute("BEGIN IMMEDIATE")                     # free again once committed
    other_process.execute("ROLLBACK")
    other_process.close()
    engine.dispose()


def test_a_writer_that_commits_and_begins_again_goes_behind_the_writer_already_waiting(db: Path) -> None:
    engine = _engine(db)
    order: list[str] = []
    first_holds = threading.Event()
    waiting_started = threading.Event()

    def busy_loop() -> None:
        for i in range(5):
            with engine.begin() as conn:
                conn.execute(text("UPDATE tip SET seq = seq + 1"))
                order.append(f"loop{i}")
                if i == 0:
                    first_holds.set()
                    waiting_started.wait(5)
                    time.sleep(0.1)              # the other writer is now in line

    def single() -> None:
        first_holds.wait(5)
        waiting_started.set()
        with engine.begin() as conn:
            conn.execute(text("UPDATE tip SET seq = seq + 100"))
            order.append("single")

    threads = [threading.Thread(target=busy_loop), threading.Thread(target=single)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert order[:2] == ["loop0", "single"]
    with engine.connect() as conn:
        assert conn.execute(text("SELECT seq FROM tip")).scalar() == 1 + 5 + 100
    engine.dispose()


def test_a_failed_write_leaves_the_line_to_the_next_writer(db: Path) -> None:
    engine = _engine(db, busy_timeout_ms=1_000)
    with pytest.raises(IntegrityError):
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO tip VALUES ('a', 9)"))   # primary key taken: rolled back
    done = threading.Event()

    def write() -> None:
        with engine.begin() as conn:
            conn.execute(text("UPDATE tip SET seq = 7"))
        done.set()

    threading.Thread(target=write).start()
    assert done.wait(3)
    engine.dispose()


def test_a_writer_line_hands_over_in_arrival_order_and_gives_up_after_its_timeout() -> None:
    line = WriterLine()
    assert line.acquire(0.1)
    got: list[int] = []

    def wait(n: int) -> None:
        if line.acquire(5):
            got.append(n)
            line.release()

    threads = []
    for n in range(3):
        t = threading.Thread(target=wait, args=(n,))
        t.start()
        threads.append(t)
        while line.waiting() < n + 1:
            time.sleep(0.001)
    line.release()
    for t in threads:
        t.join(5)
    assert got == [0, 1, 2]
    assert line.acquire(0.1)
    assert not _acquire_in_thread(line, 0.05)
    line.release()


def _acquire_in_thread(line: WriterLine, timeout_s: float) -> bool:
    result: list[bool] = []
    t = threading.Thread(target=lambda: result.append(line.acquire(timeout_s)))
    t.start()
    t.join(5)
    return result[0]
