import sqlite3

import pytest

from heron_core.errors import HeronError
from heron_core.measure import MeasureResult, Status
from heron_core.records import SCHEMA_VERSION, RecordDB

ARGS = dict(workload_key="w", target_key="t", task={}, target_info={}, searcher="crand", run_id=None, versions={})


def test_records_dedupe_and_best(tmp_path):
    db = RecordDB(tmp_path / "r.db")
    assert db.add(MeasureResult({"a": 1}, Status.OK, [2e-3, 1e-3, 3e-3]), **ARGS).latency_s == 2e-3
    assert db.add(MeasureResult({"a": 1}, Status.OK, [1e-6]), **ARGS) is None  # same point: kept once
    db.add(MeasureResult({"a": 2}, Status.OK, [1e-3]), **ARGS)
    db.add(MeasureResult({"a": 3}, Status.BUILD_ERROR, error="boom"), **ARGS)
    (best,) = db.best()
    assert best.point == {"a": 2} and best.latency_s == 1e-3
    recs = db.records("w", "t")
    assert [r.status for r in recs] == [Status.OK, Status.OK, Status.BUILD_ERROR]
    assert recs[2].error == "boom"
    assert db.summary() == [("w", "t", 3, 2)]


def test_newer_schema_is_refused(tmp_path):
    RecordDB(tmp_path / "r.db").close()
    conn = sqlite3.connect(tmp_path / "r.db")
    with conn:
        conn.execute("UPDATE meta SET value=? WHERE key='schema_version'", (str(SCHEMA_VERSION + 1),))
    conn.close()
    with pytest.raises(HeronError, match="newer"):
        RecordDB(tmp_path / "r.db")
