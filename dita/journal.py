"""The SQLite journal: every input the engine took, and what it decided, in order.

One row per record, numbered by ``seq``. The records that rebuild a kernel are the
``apply`` records — exactly what the engine received (slot, event, payload) — because the
engine is deterministic: applying them again, in order, to a fresh engine gives the same
states, records and account. The other kinds (``intent``, ``transition``, ``effect``,
``settlement``) say what happened and let a replay check itself against the original run.

A ``checkpoint`` record holds the kernel's whole state (its :meth:`~dita.Kernel.snapshot`)
at a moment between two calls. Recovery starts from the latest one and applies only the
records after it, so recovering a long journal costs what has happened since its last
checkpoint, not its whole history; a full replay instead checks each checkpoint against the
state it has rebuilt by then. The latest checkpoint's sequence number is kept in ``meta``,
written in the same transaction as the record.

Rotation (:meth:`dita.Kernel.rotate_journal`) bounds the file: the kernel continues in a new
file that opens with a checkpoint of its state, while the old one ends with the same
checkpoint and is written no more. The two name each other in ``meta`` (``continued_in``,
``continues``), by paths relative to their folder; :func:`journal_chain` lists a chain's files.

Write-ahead: the kernel flushes the journal before every call to the venue and before each
public call returns. An order is therefore journaled before it can exist at the venue, and a
fill is journaled before the strategy hears of it; a fill that was applied in memory but
not yet journaled when the process died is not lost either — the venue still has it, and
recovery asks for it again (its event id makes it apply once).

Durability modes:

``"full"`` (default)
    Every flush is a commit with ``synchronous=FULL``: durable on disk before the call
    returns.
``"batched"``
    Records are committed when ``batch_records`` have accumulated or the oldest pending one
    is ``batch_ms`` old (checked at each flush point), and when the journal closes;
    ``synchronous=NORMAL``. A crash may lose at most that window — and never an order sent
    to the venue, whose records are always committed before the venue call.

The journal never stores secrets: venue options are not written at all, and venue events
are stored without their ``raw`` exchange payload.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import sqlite3
import time
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, Iterator

from dita.errors import DitaError

try:
    import fcntl
except ImportError:  # not a POSIX system: journals are not locked against a second writer
    fcntl = None

SCHEMA_VERSION = 1
DURABILITY_MODES = ("full", "batched")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS records (
    seq  INTEGER PRIMARY KEY,
    ts   REAL NOT NULL,
    kind TEXT NOT NULL,
    slot INTEGER,
    data TEXT NOT NULL
);
"""


class JournalError(DitaError):
    """A journal that cannot be opened, read or replayed."""


@dataclass(frozen=True)
class Record:
    seq: int
    ts: float
    kind: str
    slot: int | None
    data: Any


def _plain(value: Any) -> Any:
    """JSON form of what json cannot write itself: decimals as exact strings, dates and
    times in ISO 8601. Anything else is refused by name (returning it unchanged would make
    json report a circular reference)."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, (datetime.datetime, datetime.date, datetime.time)):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} value {value!r} cannot be journaled; "
                    "give a str, int, float, bool, Decimal, date or time, or lists and dicts of them")


# One encoder for every record: json.dumps with options builds a new encoder per call.
_encode = json.JSONEncoder(default=_plain, separators=(",", ":"), ensure_ascii=False).encode
# What new input must be: NaN and infinities are not JSON (a strict reader of a snapshot or
# a record refuses them), and no number a trade is made of is one. (Records written before
# this check may hold one: they are still read, replayed and carried into checkpoints.)
_encode_strict = json.JSONEncoder(default=_plain, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode


def journal_problem(data: Any) -> str | None:
    """Why ``data`` cannot be written to a journal, or None if it can."""
    try:
        _encode_strict(data)
    except (TypeError, ValueError) as exc:
        if "Out of range float" in str(exc):
            return "it holds a float NaN or infinity, which JSON cannot hold"
        return str(exc)
    return None


def as_recorded(data: Any) -> Any:
    """``data`` exactly as a record holds it once read back: plain JSON, decimals as text."""
    return json.loads(_encode(data))


def lock_path(path: Path) -> Path:
    """The file whose lock marks a journal's writer: ``run.sqlite.lock`` beside ``run.sqlite``
    (beside the file itself, when the path is a symbolic link to it)."""
    path = Path(path).resolve()
    return path.with_name(path.name + ".lock")


def _lock_for_writing(path: Path) -> Any:
    """Takes the journal's writer lock: an exclusive flock on a file beside the journal,
    which the system drops when it is closed or the process ends (crash included). A
    JournalError if another kernel, in this process or another, holds it: two writers would
    interleave their histories. A journal dropped without close() releases it when it is
    collected.

    Never on the database file itself: closing any descriptor of a file drops every POSIX
    lock the process holds on it, SQLite's included, so a refused second writer closing its
    descriptor would leave the live writer's connection unlocked, and a reader could then
    checkpoint and delete the write-ahead log under it ("How To Corrupt An SQLite Database
    File", section 2.2)."""
    if fcntl is None:
        return None
    fd = os.open(lock_path(path), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise JournalError(f"journal {path} is being written by another kernel (in this process or another); "
                           "a journal has one writer at a time: close that kernel first") from None
    return fd


def _unlock(fd: int | None) -> None:
    if fd is not None:
        os.close(fd)  # closing the descriptor releases the flock


class Journal:
    """An append-only SQLite journal. Use :meth:`create` for a new one, :meth:`open` to
    read or continue an existing one."""

    def __init__(self, path: str | Path, conn: sqlite3.Connection, durability: str, batch_records: int,
                 batch_ms: float):
        if durability not in DURABILITY_MODES:
            raise JournalError(f"durability must be one of {', '.join(DURABILITY_MODES)}, got {durability!r}")
        if batch_records < 1 or batch_ms <= 0:
            raise JournalError("batch_records must be >= 1 and batch_ms > 0")
        self.path = Path(path)
        self.durability = durability
        self.batch_records = batch_records
        self.batch_ms = batch_ms
        self._conn = conn
        self._writer_lock: int | None = None
        self._pending: list[tuple] = []
        self._pending_meta: dict[str, Any] = {}
        self._oldest_pending = 0.0
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={'FULL' if durability == 'full' else 'NORMAL'}")
        row = conn.execute("SELECT MAX(seq) FROM records").fetchone()
        self.last_seq = row[0] or 0

    # ------------------------------------------------------------------ opening

    @classmethod
    def create(cls, path: str | Path, meta: dict[str, Any], durability: str = "full", batch_records: int = 1000,
               batch_ms: float = 50.0) -> "Journal":
        """A new journal at ``path``; refuses to overwrite one that already holds records."""
        p = Path(path)
        conn = cls._connect(p)
        lock = None
        try:
            lock = _lock_for_writing(p)
            conn.executescript(_SCHEMA)
            if conn.execute("SELECT 1 FROM records LIMIT 1").fetchone():
                raise JournalError(f"journal {p} already holds records; recover from it "
                                   "(dita.Kernel.recover) or choose a new path")
            values = {"schema_version": SCHEMA_VERSION, "created_at": time.time(), **meta}
            with conn:
                conn.execute("DELETE FROM meta")
                conn.executemany("INSERT INTO meta VALUES (?, ?)", [(k, _encode(v)) for k, v in values.items()])
            journal = cls(p, conn, durability, batch_records, batch_ms)
        except BaseException:
            conn.close()
            _unlock(lock)
            raise
        journal._writer_lock = lock
        return journal

    @classmethod
    def open(cls, path: str | Path, durability: str = "full", batch_records: int = 1000,
             batch_ms: float = 50.0, writer: bool = False) -> "Journal":
        """An existing journal, to read or (``writer``) to continue. A journal has one writer
        at a time; readers (``dita journal show``) may look while it is written."""
        p = Path(path)
        if not p.is_file():
            raise JournalError(f"journal not found: {p}")
        conn = cls._connect(p)
        lock = None
        try:
            if writer:
                lock = _lock_for_writing(p)
            tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
            unfinished = (f"journal {p} was never finished: the process creating it stopped before it was ready, "
                          "so it holds nothing to recover; start a new kernel with this journal path instead")
            if not tables:
                raise JournalError(unfinished)
            if not {"meta", "records"} <= tables:
                raise JournalError(f"{p} is not a DITA journal (no meta/records tables)")
            journal = cls(p, conn, durability, batch_records, batch_ms)
            version = journal.meta().get("schema_version")
            if version is None and conn.execute("SELECT 1 FROM records LIMIT 1").fetchone() is None:
                raise JournalError(unfinished)
            if version != SCHEMA_VERSION:
                raise JournalError(f"journal {p} has schema version {version!r}; this DITA reads version {SCHEMA_VERSION}")
        except sqlite3.DatabaseError as exc:
            conn.close()
            _unlock(lock)
            raise JournalError(f"{p} is not a readable DITA journal: {exc}") from None
        except BaseException:
            conn.close()
            _unlock(lock)
            raise
        journal._writer_lock = lock
        return journal

    @staticmethod
    def _connect(p: Path) -> sqlite3.Connection:
        try:
            # Autocommit mode: transactions are opened explicitly by flush().
            return sqlite3.connect(str(p), isolation_level=None, check_same_thread=False)
        except sqlite3.Error as exc:
            raise JournalError(f"cannot open journal {p}: {exc}") from None

    # ------------------------------------------------------------------ writing

    def append(self, kind: str, slot: int | None, data: Any) -> int:
        """Adds a record (held in memory until the next flush); returns its sequence number."""
        if self._conn is None:
            raise JournalError(f"journal {self.path} is closed")
        text = _encode(data)  # first: a record that cannot be written takes no number
        if not self._pending:
            self._oldest_pending = time.monotonic()
        self.last_seq += 1
        self._pending.append((self.last_seq, time.time(), kind, slot, text))
        return self.last_seq

    def append_checkpoint(self, snapshot: Any) -> int:
        """Adds a ``checkpoint`` record and commits it, with everything pending, at once;
        returns its sequence number."""
        seq = self.append("checkpoint", None, snapshot)
        self._pending_meta["last_checkpoint"] = seq
        self.flush(force=True)
        return seq

    def set_meta(self, key: str, value: Any) -> None:
        """Sets a ``meta`` key, committed with the next flush (in the same transaction as the
        records pending then)."""
        self._pending_meta[key] = value

    def flush(self, force: bool = False) -> None:
        """A flush point. In ``full`` mode (or with ``force``) every pending record is
        committed now; in ``batched`` mode only once the batch is full or old enough."""
        if not self._pending and not self._pending_meta:
            return
        if self._pending and not force and self.durability == "batched":
            age_ms = (time.monotonic() - self._oldest_pending) * 1000
            if len(self._pending) < self.batch_records and age_ms < self.batch_ms:
                return
        rows, self._pending = self._pending, []
        meta, self._pending_meta = self._pending_meta, {}
        try:
            self._conn.execute("BEGIN")
            self._conn.executemany("INSERT INTO records (seq, ts, kind, slot, data) VALUES (?, ?, ?, ?, ?)", rows)
            self._conn.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)", [(k, _encode(v)) for k, v in meta.items()])
            self._conn.execute("COMMIT")
        except sqlite3.Error as exc:
            if self._conn.in_transaction:
                self._conn.execute("ROLLBACK")
            self._pending = rows + self._pending
            self._pending_meta = {**meta, **self._pending_meta}
            raise JournalError(f"cannot write journal {self.path}: {exc}") from None

    def adopt_writer_lock(self, lock: Any) -> None:
        """Makes this journal the holder of a writer lock taken by :func:`claim_journal_chain`
        for its file: released when the journal is closed."""
        self._writer_lock = lock

    @property
    def closed(self) -> bool:
        return self._conn is None

    def __del__(self) -> None:
        # Dropped without close(): what is not flushed is lost, but the writer lock must go.
        _unlock(getattr(self, "_writer_lock", None))

    def close(self) -> None:
        if self._conn is None:
            return
        try:
            self.flush(force=True)
        finally:
            self._conn.close()
            self._conn = None
            _unlock(self._writer_lock)
            self._writer_lock = None

    # ------------------------------------------------------------------ reading

    def meta(self) -> dict[str, Any]:
        with self._reading("its meta"):
            return {k: json.loads(v) for k, v in self._conn.execute("SELECT key, value FROM meta")}

    def records(self, after: int = 0) -> Iterator[Record]:
        """Committed records with ``seq > after``, in order."""
        with self._reading(f"its records after {after}"):
            cur = self._conn.execute("SELECT seq, ts, kind, slot, data FROM records WHERE seq > ? ORDER BY seq",
                                     (after,))
            for seq, ts, kind, slot, data in cur:
                yield Record(seq, ts, kind, slot, json.loads(data))

    @contextlib.contextmanager
    def _reading(self, what: str) -> Iterator[None]:
        """A damaged file (a bad page, bytes that are not a record) is a JournalError naming
        it, not a bare sqlite3 or JSON traceback."""
        if self._conn is None:
            raise JournalError(f"journal {self.path} is closed")
        try:
            yield
        except sqlite3.DatabaseError as exc:
            raise JournalError(f"journal {self.path} is damaged: reading {what}: {exc}") from None
        except ValueError as exc:   # json.JSONDecodeError
            raise JournalError(f"journal {self.path} is damaged: reading {what}: a record is not JSON: {exc}") from None

    def first_record(self) -> Record | None:
        """The committed record with the lowest sequence number, or ``None``."""
        return next(self.records(), None)

    def continued_in(self) -> Path | None:
        """The file this journal continues in, if it was rotated (see
        :meth:`dita.Kernel.rotate_journal`): stored relative to this journal's folder, so
        that the files can be moved together."""
        link = self.meta().get("continued_in")
        return None if link is None else self.path.parent / link

    def last_checkpoint(self) -> Record | None:
        """The latest committed ``checkpoint`` record, or ``None``."""
        seq = self.meta().get("last_checkpoint")
        if seq is None:
            return None
        with self._reading(f"checkpoint record {seq}"):
            row = self._conn.execute("SELECT seq, ts, kind, slot, data FROM records WHERE seq = ?", (seq,)).fetchone()
            data = json.loads(row[4]) if row is not None else None
        if row is None or row[2] != "checkpoint":
            raise JournalError(f"journal {self.path}: its meta names record {seq} as the latest checkpoint, "
                               "which is not a checkpoint record")
        return Record(row[0], row[1], row[2], row[3], data)

    def __enter__(self) -> "Journal":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Journal({str(self.path)!r}, durability={self.durability!r}, last_seq={self.last_seq})"


def claim_journal_chain(path: str | Path) -> tuple[list[Path], bool, Any]:
    """:func:`journal_chain`, with the writer lock of its last file held (the caller releases
    it with :meth:`Journal.adopt_writer_lock` or :func:`release_writer_lock`). The lock is
    taken first, then the chain read again from that file: a writer that rotated meanwhile
    released the file the chain ended in, and holding that one would make a second writer
    of a journal that lives on in the next file."""
    for _ in range(5):
        chain, _stale = journal_chain(path)
        lock = _lock_for_writing(chain[-1])
        try:
            again, stale = journal_chain(chain[-1])
        except BaseException:
            _unlock(lock)
            raise
        if len(again) == 1:
            return chain, stale, lock
        _unlock(lock)
    raise JournalError(f"journal {path}: its last file kept changing while recovery looked for it; "
                       "another kernel is still writing and rotating it")


def release_writer_lock(lock: Any) -> None:
    _unlock(lock)


def journal_chain(path: str | Path) -> tuple[list[Path], bool]:
    """The files of the journal chain from ``path`` on (see :meth:`dita.Kernel.rotate_journal`), and
    whether the last one names a next file that is not one. That is the trace of a rotation
    a crash interrupted before the next file held its checkpoint: the file naming it is then
    the latest, complete, and the stale link is dropped when recovery continues it."""
    path = Path(path)
    chain: list[Path] = []
    while True:
        with Journal.open(path) as j:
            chain.append(path)
            nxt = j.continued_in()
        if nxt is None:
            return chain, False
        follow = nxt.is_file() and all(nxt.resolve() != p.resolve() for p in chain)
        if follow:
            try:
                with Journal.open(nxt) as probe:
                    back = probe.meta().get("continues") or {}
                    follow = (probe.last_checkpoint() is not None
                              and (nxt.parent / back.get("journal", "")).resolve() == path.resolve())
            except JournalError:
                follow = False
        if not follow:
            return chain, True
        path = nxt
