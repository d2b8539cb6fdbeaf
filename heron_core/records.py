"""Records: every measurement, written to an embedded SQLite database as it happens.

One row per (workload, target, point): a point measured once is never measured again, so a
killed run resumes where it stopped. Each row keeps what is needed to trust and rebuild it:
the task, the point, latency statistics, the error class, timestamps and versions.

Export format (``heron records export``): JSON Lines, one record per line, each a JSON object
with ``"heron_records": 1`` (the format version, on every line so files can be concatenated
and filtered) and every column of the records table except ``id``, ``run_id`` (local to one
database) and ``point_key`` (derived from ``point``); the JSON columns (point, costs, task,
target_info, versions) are nested objects, not strings.
"""

from __future__ import annotations

import functools
import inspect
import json
import sqlite3
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Iterable, Iterator, Literal

from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from heron_core.errors import ConfigError, HeronError
from heron_core.measure import MeasureResult, Status
from heron_core.space import Point, point_key

SCHEMA_VERSION = 1
EXPORT_FORMAT = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY,
    started REAL NOT NULL,
    config TEXT NOT NULL,
    versions TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS records (
    id INTEGER PRIMARY KEY,
    workload_key TEXT NOT NULL,
    target_key TEXT NOT NULL,
    point_key TEXT NOT NULL,
    point TEXT NOT NULL,
    status TEXT NOT NULL,
    error TEXT NOT NULL DEFAULT '',
    latency_s REAL,
    mean_s REAL,
    min_s REAL,
    max_s REAL,
    std_s REAL,
    costs TEXT NOT NULL DEFAULT '[]',
    build_s REAL,
    run_s REAL,
    searcher TEXT NOT NULL,
    run_id INTEGER REFERENCES runs(id),
    task TEXT NOT NULL,
    target_info TEXT NOT NULL,
    versions TEXT NOT NULL,
    created REAL NOT NULL,
    UNIQUE (workload_key, target_key, point_key)
);
CREATE INDEX IF NOT EXISTS records_workload ON records (workload_key, target_key, status, latency_s);
"""


@dataclass(frozen=True)
class Record:
    id: int
    workload_key: str
    target_key: str
    point: Point
    status: Status
    error: str
    latency_s: float | None
    costs: list[float]
    searcher: str
    run_id: int | None
    task: dict
    created: float

    @property
    def ok(self) -> bool:
        return self.status is Status.OK


class RecordsError(HeronError):
    """The records database cannot be read or written (damaged, disk full, locked too long)."""


BUSY_TIMEOUT_S = 60.0
"""How long a write waits for another process's (runs tuning into one database take turns)."""


def _explain(path: Path, exc: sqlite3.Error) -> RecordsError:
    text = str(exc)
    if "full" in text:
        why = "the disk is full; every record committed before is kept: free space and re-run the same command to resume"
    elif "malformed" in text or "not a database" in text or "file is encrypted" in text:
        why = "the file is damaged or not a records database; copy what it still holds with `sqlite3 FILE .recover`"
    elif "locked" in text or "busy" in text:
        why = f"another process held it for over {BUSY_TIMEOUT_S:g} s; retry when it is done"
    else:
        why = "SQLite could not complete the operation"
    return RecordsError(f"records database {path}: {text} ({why})")


def _translated(fn):
    """sqlite3 errors -> RecordsError (one clear message naming the file)."""
    if inspect.isgeneratorfunction(fn):

        @functools.wraps(fn)
        def generate(self, *args, **kwargs):
            try:
                yield from fn(self, *args, **kwargs)
            except sqlite3.Error as exc:
                raise _explain(self.path, exc) from None

        return generate

    @functools.wraps(fn)
    def call(self, *args, **kwargs):
        try:
            return fn(self, *args, **kwargs)
        except sqlite3.Error as exc:
            raise _explain(self.path, exc) from None

    return call


class RecordDB:
    """Every record is committed as it is added (WAL: several processes may tune into one file)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise RecordsError(f"cannot create the folder of records database {self.path}: {exc.strerror}") from None
        try:
            self.conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S)
        except sqlite3.Error as exc:
            raise _explain(self.path, exc) from None
        try:
            self._open_retrying()
        except BaseException:
            self.conn.close()
            raise

    def _open_retrying(self) -> None:
        """Two processes creating one database at once: SQLite answers the switch to WAL or the schema's
        creation with 'locked' at once, without waiting out its busy timeout, so retry up to that timeout."""
        deadline = time.monotonic() + BUSY_TIMEOUT_S
        while True:
            try:
                return self._open()
            except sqlite3.OperationalError as exc:
                if not ("locked" in str(exc) or "busy" in str(exc)) or time.monotonic() > deadline:
                    raise _explain(self.path, exc) from None
                time.sleep(0.05)
            except sqlite3.Error as exc:
                raise _explain(self.path, exc) from None

    def _open(self) -> None:
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=NORMAL")
        row = (
            self.conn.execute("SELECT name FROM sqlite_master WHERE name='meta'").fetchone()
            and self.conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
        )
        if row and int(row[0]) > SCHEMA_VERSION:
            raise RecordsError(
                f"records database {self.path} has schema version {row[0]}, newer than this "
                f"Heron understands ({SCHEMA_VERSION}); upgrade heron-core to read it"
            )
        with self.conn:
            self.conn.executescript(_SCHEMA)
            self.conn.execute("INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))

    def close(self) -> None:
        self.conn.close()

    @_translated
    def start_run(self, config: dict, versions: dict) -> int:
        with self.conn:
            cur = self.conn.execute(
                "INSERT INTO runs (started, config, versions) VALUES (?, ?, ?)",
                (time.time(), json.dumps(config, sort_keys=True), json.dumps(versions, sort_keys=True)),
            )
        return int(cur.lastrowid)

    @_translated
    def add(
        self,
        result: MeasureResult,
        *,
        workload_key: str,
        target_key: str,
        task: dict,
        target_info: dict,
        searcher: str,
        run_id: int | None,
        versions: dict,
    ) -> Record | None:
        """Write one measurement now (committed); None if this point was already recorded."""
        c = result.costs
        stats = (
            (statistics.median(c), statistics.fmean(c), min(c), max(c), statistics.pstdev(c)) if result.ok and c else (None,) * 5
        )
        now = time.time()
        with self.conn:
            cur = self.conn.execute(
                """INSERT OR IGNORE INTO records (workload_key, target_key, point_key, point, status, error,
                   latency_s, mean_s, min_s, max_s, std_s, costs, build_s, run_s, searcher, run_id, task,
                   target_info, versions, created) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)""",
                (
                    workload_key,
                    target_key,
                    point_key(result.point),
                    json.dumps(result.point),
                    result.status.value,
                    result.error,
                    *stats,
                    json.dumps(c),
                    result.build_s,
                    result.run_s,
                    searcher,
                    run_id,
                    json.dumps(task, sort_keys=True),
                    json.dumps(target_info, sort_keys=True),
                    json.dumps(versions, sort_keys=True),
                    now,
                ),
            )
        if cur.rowcount == 0:
            return None
        return self.get(int(cur.lastrowid))

    _COLUMNS = "id, workload_key, target_key, point, status, error, latency_s, costs, searcher, run_id, task, created"

    @staticmethod
    def _record(row) -> Record:
        rid, wk, tk, point, status, error, lat, costs, searcher, run_id, task, created = row
        loads = json.loads
        return Record(rid, wk, tk, loads(point), Status(status), error, lat, loads(costs), searcher, run_id, loads(task), created)

    @_translated
    def get(self, record_id: int) -> Record:
        row = self.conn.execute(f"SELECT {self._COLUMNS} FROM records WHERE id=?", (record_id,)).fetchone()
        return self._record(row)

    @_translated
    def records(self, workload_key: str, target_key: str) -> list[Record]:
        rows = self.conn.execute(
            f"SELECT {self._COLUMNS} FROM records WHERE workload_key=? AND target_key=? ORDER BY id",
            (workload_key, target_key),
        )
        return [self._record(r) for r in rows]

    @_translated
    def best(self, workload_key: str | None = None) -> list[Record]:
        """The fastest successful record of each (workload, target)."""
        where, args = ("AND workload_key=?", (workload_key,)) if workload_key else ("", ())
        rows = self.conn.execute(
            f"""SELECT {self._COLUMNS} FROM records r WHERE status='ok' {where} AND id = (
                    SELECT id FROM records s WHERE s.workload_key=r.workload_key AND s.target_key=r.target_key
                    AND s.status='ok' ORDER BY s.latency_s, s.id LIMIT 1)
                ORDER BY workload_key, target_key""",
            args,
        )
        return [self._record(r) for r in rows]

    @_translated
    def summary(self) -> list[tuple[str, str, int, int]]:
        """(workload, target, records, successful records) for every workload in the database."""
        return list(
            self.conn.execute(
                """SELECT workload_key, target_key, COUNT(*), SUM(status='ok') FROM records
                   GROUP BY workload_key, target_key ORDER BY workload_key, target_key"""
            )
        )

    # --- whole rows: reports, export and import -------------------------------------------
    _JSON = ("point", "costs", "task", "target_info", "versions")

    @_translated
    def rows(self, workload: str | None = None, target: str | None = None) -> Iterator[dict[str, Any]]:
        """Every column of the records whose keys contain ``workload`` / ``target`` (substrings), by id;
        the JSON columns decoded."""
        cur = self.conn.execute(
            "SELECT * FROM records WHERE instr(workload_key, ?) > 0 AND instr(target_key, ?) > 0 ORDER BY id",
            (workload or "", target or ""),
        )
        names = [d[0] for d in cur.description]
        for values in cur:
            row = dict(zip(names, values))
            for col in self._JSON:
                row[col] = json.loads(row[col])
            yield row

    @_translated
    def wall_seconds(self) -> dict[tuple[str, str], float]:
        """Wall time of tuning per (workload, target): each record is charged the time since the
        previous record of its run (the run's start for the first), so searching, model fitting and
        building count too. Imported records (no run) count nothing."""
        rows = self.conn.execute(
            """SELECT workload_key, target_key, SUM(gap) FROM (
                   SELECT r.workload_key, r.target_key, r.created - COALESCE(
                       LAG(r.created) OVER (PARTITION BY r.run_id ORDER BY r.id), runs.started) AS gap
                   FROM records r JOIN runs ON runs.id = r.run_id)
               GROUP BY workload_key, target_key"""
        )
        return {(w, t): s for w, t, s in rows}

    @_translated
    def export(self, out: IO[str], workload: str | None = None, target: str | None = None) -> int:
        """Write the matching records as JSON Lines (see the module docstring); returns how many."""
        n = 0
        for row in self.rows(workload, target):
            line = {"heron_records": EXPORT_FORMAT, **{k: row[k] for k in ExportedRecord.model_fields if k in row}}
            out.write(json.dumps(line) + "\n")
            n += 1
        return n

    @_translated
    def import_records(self, records: list[ExportedRecord]) -> tuple[int, int]:
        """Add exported records (``parse_export``) in one transaction. Returns (imported, skipped:
        the (workload, target, point) was already recorded)."""
        columns = [c for c in ExportedRecord.model_fields if c != "heron_records"]
        placeholders = ", ".join("?" * (len(columns) + 1))
        sql = f"INSERT OR IGNORE INTO records (point_key, {', '.join(columns)}) VALUES ({placeholders})"
        rows = []
        for r in records:
            d = r.model_dump(mode="json")
            encoded = (json.dumps(d[c], sort_keys=c != "point") if c in self._JSON else d[c] for c in columns)
            rows.append((point_key(r.point), *encoded))
        before = self.conn.total_changes
        with self.conn:  # all or nothing
            self.conn.executemany(sql, rows)
        imported = self.conn.total_changes - before
        return imported, len(records) - imported


class ExportedRecord(BaseModel):
    """One line of an export (format ``EXPORT_FORMAT``)."""

    model_config = ConfigDict(extra="forbid")
    heron_records: Literal[1]
    workload_key: str
    target_key: str
    point: dict[str, int]
    status: Status
    error: str = ""
    latency_s: float | None = None
    mean_s: float | None = None
    min_s: float | None = None
    max_s: float | None = None
    std_s: float | None = None
    costs: list[float] = []
    build_s: float | None = None
    run_s: float | None = None
    searcher: str
    task: dict[str, Any]
    target_info: dict[str, Any]
    versions: dict[str, Any]
    created: float

    @model_validator(mode="after")
    def _ok_has_latency(self) -> "ExportedRecord":
        if self.status is Status.OK and self.latency_s is None:
            raise ValueError("a record with status ok needs latency_s")
        return self


def parse_export(lines: Iterable[str], source: str = "input") -> list[ExportedRecord]:
    """The records of an export; the first malformed line raises ConfigError naming it."""
    return [_parse_line(line, f"{source} line {n}") for n, line in enumerate(lines, 1) if line.strip()]


def _parse_line(line: str, where: str) -> ExportedRecord:
    try:
        data = json.loads(line)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{where}: not JSON ({exc.msg} at column {exc.colno})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a JSON object, got {type(data).__name__}")
    version = data.get("heron_records")
    if isinstance(version, int) and version > EXPORT_FORMAT:
        raise ConfigError(f"{where}: records format {version} is newer than this Heron reads ({EXPORT_FORMAT})")
    try:
        return ExportedRecord.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(p) for p in first["loc"]) or "record"
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        raise ConfigError(f"{where}: {loc}: {first['msg']}{more}") from None
