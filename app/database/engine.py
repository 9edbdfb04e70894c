"""Engine and sessions for SQLite (the default) and MySQL/MariaDB, their known traps handled."""

import contextlib
import os
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from app.utils.exceptions import ServiceBusyError

SQLITE_BUSY_TIMEOUT_MS = 30_000
READ_ONLY_OPTION = "imgapi_read_only"


def create_db_engine(
    url: str,
    *,
    pool_size: int,
    pool_recycle: int,
    echo: bool = False,
    timeout_seconds: float | None = None,
    queue_sqlite_writers: bool = True,
) -> Engine:
    """An engine for the URL.

    ``timeout_seconds`` bounds the wait for a pooled connection and, on MySQL, connecting and
    every read and write on the wire: a database that stops answering (a frozen server, a
    network partition) then fails the request with a clean error instead of holding it for as
    long as the stall lasts. None waits as long as it takes (migrations at start-up).
    ``queue_sqlite_writers=False`` leaves waiting writers to SQLite's busy handler alone; it
    exists so that the benchmark can measure what the queue is worth.
    """
    pool_timeout = 30.0 if timeout_seconds is None else timeout_seconds
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            _create_private_file(Path(parsed.database))
        # One lock per engine, shared by its connections: SQLite allows one writer at a time.
        connection_class = type(
            "WriterQueueConnection",
            (WriterQueueConnection,),
            {"lock": threading.Lock() if queue_sqlite_writers else None},
        )
        engine = create_engine(
            parsed,
            echo=echo,
            pool_size=pool_size,
            max_overflow=pool_size * 2,
            pool_timeout=pool_timeout,
            connect_args={
                "check_same_thread": False,
                "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000,
                "factory": connection_class,
            },
        )
        event.listen(engine, "connect", _configure_sqlite)
        event.listen(engine, "begin", _begin_immediate)
        return engine
    if parsed.get_backend_name() == "mysql" and "charset" not in parsed.query:
        parsed = parsed.update_query_dict({"charset": "utf8mb4"})
    wire_timeouts = (
        {}
        if timeout_seconds is None
        else {
            "connect_timeout": max(1, round(timeout_seconds)),
            "read_timeout": timeout_seconds,
            "write_timeout": timeout_seconds,
        }
    )
    # pre-ping and recycling avoid "MySQL server has gone away" after idle hours;
    # READ COMMITTED lets a polling request see a task another thread just finished.
    return create_engine(
        parsed,
        echo=echo,
        pool_pre_ping=True,
        pool_recycle=pool_recycle,
        pool_size=pool_size,
        max_overflow=pool_size * 2,
        pool_timeout=pool_timeout,
        isolation_level="READ COMMITTED",
        connect_args=wire_timeouts,
    )


def _create_private_file(path: Path) -> None:
    """Create the database file readable by its owner only; SQLite gives its WAL the same."""
    path.parent.mkdir(parents=True, exist_ok=True)
    # Never open an existing database file here: closing any descriptor of it would drop the
    # locks this process's SQLite connections hold on it (POSIX locks are per process), and
    # with them the database's integrity.
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))


def _configure_sqlite(dbapi_connection: Any, _record: object) -> None:
    # WAL lets readers run while one writer commits; the busy timeout makes writers wait
    # for each other instead of failing with "database is locked".
    # pysqlite's own implicit BEGIN is turned off so that _begin_immediate decides.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _begin_immediate(connection: Connection) -> None:
    # A deferred transaction that reads and then writes fails at once with "database is
    # locked" if another writer committed in between; taking the write lock up front makes
    # it wait instead. Read-only sessions ask for a deferred BEGIN, so readers never queue
    # behind writers (WAL lets them read alongside).
    if connection.get_execution_options().get(READ_ONLY_OPTION):
        connection.exec_driver_sql("BEGIN DEFERRED")
        return
    dbapi_connection = connection.connection.dbapi_connection
    assert isinstance(dbapi_connection, WriterQueueConnection)
    try:
        dbapi_connection.begin_write()
    except sqlite3.OperationalError as exc:
        raise OperationalError("BEGIN IMMEDIATE", (), exc) from exc


class WriterQueueConnection(sqlite3.Connection):
    """Queues this process's writers on a lock instead of SQLite's busy handler.

    SQLite makes a blocked writer sleep and retry (1, 2, 5, ... up to 100 ms); under load those
    sleeps, not the writes, dominate. A lock wakes the next writer the moment the previous
    one commits. The busy timeout still covers writers in other processes.
    """

    lock: "threading.Lock | None"
    holds_lock = False

    def begin_write(self) -> None:
        if self.lock is None:
            self.execute("BEGIN IMMEDIATE")
            return
        # Bounded like SQLite's own wait: a writer that never finishes must not hang the rest.
        if not self.lock.acquire(timeout=SQLITE_BUSY_TIMEOUT_MS / 1000):
            raise sqlite3.OperationalError("database is locked (waited for another writer)")
        self.holds_lock = True
        try:
            self.execute("BEGIN IMMEDIATE")
        except BaseException:
            self._release()
            raise

    def commit(self) -> None:
        try:
            super().commit()
        finally:
            self._release()

    def rollback(self) -> None:
        try:
            super().rollback()
        finally:
            self._release()

    def close(self) -> None:
        try:
            super().close()
        finally:
            self._release()

    def _release(self) -> None:
        if self.holds_lock and self.lock is not None:
            self.holds_lock = False
            self.lock.release()


# MySQL client errors that mean the server did not answer at all: cannot connect (2003), gone
# away (2006), lost the connection mid-query, e.g. on a read timeout (2013).
UNREACHABLE_ERROR_CODES = {2003, 2006, 2013}
# How long requests are answered 503 at once after the database did not answer one of them.
UNREACHABLE_PAUSE_SECONDS = 3.0


class Database:
    """The engine plus the session factory that requests and background work share.

    It also remembers when the database last failed to answer at all: for a few seconds after
    that, requests are refused at once (``check_answering``) instead of each waiting out its
    own timeouts against a database that is frozen or gone. Background work keeps trying.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._not_answering_until = 0.0
        self._sessions = sessionmaker(engine, expire_on_commit=False)
        self._read_sessions = sessionmaker(
            engine.execution_options(**{READ_ONLY_OPTION: True}), expire_on_commit=False
        )

    def session(self) -> Session:
        return self._sessions()

    def read_session(self) -> Session:
        """A session for work that only reads (it must not write: SQLite could refuse)."""
        return self._read_sessions()

    def dispose(self) -> None:
        self.engine.dispose()

    def note_failure(self, error: Exception) -> None:
        """Remember an error that says the database does not answer (not merely busy)."""
        code = getattr(getattr(error, "orig", None), "args", (None,))[0]
        if code in UNREACHABLE_ERROR_CODES:
            self._not_answering_until = time.monotonic() + UNREACHABLE_PAUSE_SECONDS

    def check_answering(self) -> None:
        """Raise ServiceBusyError while the database recently did not answer."""
        if time.monotonic() < self._not_answering_until:
            raise ServiceBusyError(
                "the database did not answer just now; try again shortly", retry_after=5
            )
