"""Records: every measurement, written to an embedded SQLite database as it happens.

One row per (workload, target, point): a point measured once is never measured again, so a
killed run resumes where it stopped. Each row keeps what is needed to trust and rebuild it:
the task, the point, latency statistics, the error class, timestamps and versions.
"""

from __future__ import annotations

import json
import sqlite3
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

from heron_core.errors import HeronError
from heron_core.measure import MeasureResult, Status
from heron_core.space import Point, point_key

SCHEMA_VERSION = 1

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


class RecordDB:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.conn = sqlite3.connect(self.path, timeout=30)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=NORMAL")
        row = self.conn.execute("SELECT name FROM sqlite_master WHERE name='meta'").fetchone() and self.conn.execute(
            "SELECT value FROM meta WHERE key='schema_version'"
        ).fetchone()
        if row and int(row[0]) > SCHEMA_VERSION:
            self.conn.close()
            raise HeronError(
                f"records database {self.path} has schema version {row[0]}, newer than this "
                f"Heron understands ({SCHEMA_VERSION}); upgrade heron-core to read it"
            )
        with self.conn:
            self.conn.executescript(_SCHEMA)
            self.conn.execute("INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))

    def close(self) -> None:
        self.conn.close()

    def start_run(self, config: dict, versions: dict) -> int:
        with self.conn:
            cur = self.conn.execute(
                "INSERT INTO runs (started, config, versions) VALUES (?, ?, ?)",
                (time.time(), json.dumps(config, sort_keys=True), json.dumps(versions, sort_keys=True)),
            )
        return int(cur.lastrowid)

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
            (statistics.median(c), statistics.fmean(c), min(c), max(c), statistics.pstdev(c))
            if result.ok and c
            else (None,) * 5
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
        return Record(
            rid, wk, tk, json.loads(point), Status(status), error, lat, json.loads(costs), searcher, run_id,
            json.loads(task), created,
        )

    def get(self, record_id: int) -> Record:
        row = self.conn.execute(f"SELECT {self._COLUMNS} FROM records WHERE id=?", (record_id,)).fetchone()
        return self._record(row)

    def records(self, workload_key: str, target_key: str) -> list[Record]:
        rows = self.conn.execute(
            f"SELECT {self._COLUMNS} FROM records WHERE workload_key=? AND target_key=? ORDER BY id",
            (workload_key, target_key),
        )
        return [self._record(r) for r in rows]

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

    def summary(self) -> list[tuple[str, str, int, int]]:
        """(workload, target, records, successful records) for every workload in the database."""
        return list(
            self.conn.execute(
                """SELECT workload_key, target_key, COUNT(*), SUM(status='ok') FROM records
                   GROUP BY workload_key, target_key ORDER BY workload_key, target_key"""
            )
        )
