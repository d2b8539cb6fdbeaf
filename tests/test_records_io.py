import io
import json
import sqlite3
import subprocess
import sys

import pytest
from conftest import MICROKERNEL, heron

from heron_core.errors import ConfigError
from heron_core.measure import MeasureResult, Status
from heron_core.records import EXPORT_FORMAT, RecordDB, parse_export

ARGS = dict(workload_key="w", target_key="t", task={"op": "x"}, target_info={}, searcher="crand", run_id=None, versions={})


def best_latency(db) -> float:
    (line,) = heron("best", "--json", db=db, check=True).stdout.splitlines()
    return json.loads(line)["latency_s"]


def test_export_import_round_trip_through_the_cli(tmp_path):
    db1, db2, db3, file = tmp_path / "1.db", tmp_path / "2.db", tmp_path / "3.db", tmp_path / "r.jsonl"
    tune = f"tune --target dlboost --target-param microkernel={MICROKERNEL} --shape M=16,K=32,N=16 --trials 4 --quiet"
    heron(*tune.split(), db=db1, check=True)
    proc = heron("records", "export", str(file), db=db1, check=True)
    assert "exported 4 records" in proc.stderr
    lines = [json.loads(ln) for ln in file.read_text().splitlines()]
    assert len(lines) == 4 and all(ln["heron_records"] == EXPORT_FORMAT for ln in lines)
    assert {"id", "run_id", "point_key"}.isdisjoint(lines[0]) and isinstance(lines[0]["point"], dict)

    assert "imported 4, skipped 0 duplicates" in heron("records", "import", str(file), db=db2, check=True).stdout
    assert best_latency(db2) == best_latency(db1)
    assert "imported 0, skipped 4 duplicates" in heron("records", "import", str(file), db=db2, check=True).stdout
    again = heron("records", "export", "-", db=db2, check=True).stdout
    assert again == file.read_text()  # nothing lost or changed on the way

    bad = file.read_text().splitlines()
    bad[2] = bad[2].replace('"status": "ok"', '"status": "fine"')
    file.write_text("\n".join(bad) + "\n")
    proc = heron("records", "import", str(file), db=db3)
    assert proc.returncode == 2 and "line 3: status" in proc.stderr and "Traceback" not in proc.stderr
    assert not db3.exists()  # checked before anything is written


def test_import_is_all_or_nothing_and_reports_duplicates(tmp_path):
    src = RecordDB(tmp_path / "src.db")
    src.add(MeasureResult({"a": 1}, Status.OK, [2e-3]), **ARGS)
    src.add(MeasureResult({"a": 2}, Status.BUILD_ERROR, error="boom"), **ARGS)
    text = io.StringIO()
    assert src.export(text) == 2
    dst = RecordDB(tmp_path / "dst.db")
    dst.add(MeasureResult({"a": 1}, Status.OK, [5e-3]), **ARGS)
    assert dst.import_records(parse_export(text.getvalue().splitlines())) == (1, 1)
    assert [(r.point, r.status, r.latency_s) for r in dst.records("w", "t")] == [
        ({"a": 1}, Status.OK, 5e-3),  # the existing row wins
        ({"a": 2}, Status.BUILD_ERROR, None),
    ]
    good = text.getvalue().splitlines()[0]
    for line, message in [
        ("{not json", "line 2: not JSON"),
        ("[1, 2]", "line 2: expected a JSON object"),
        (good.replace('"heron_records": 1', '"heron_records": 2'), "line 2: records format 2 is newer"),
        (good.replace('"latency_s": 0.002', '"latency_s": null'), "status ok needs latency_s"),
        (good.replace('"point": {"a": 1}', '"point": {"a": "x"}'), "line 2: point.a"),
        (good.replace('"searcher": "crand", ', ""), "line 2: searcher: Field required"),
    ]:
        with pytest.raises(ConfigError, match=message):
            parse_export([good, line, good], "f")


def test_export_filters_and_missing_database(tmp_path):
    db = RecordDB(tmp_path / "r.db")
    db.add(MeasureResult({"a": 1}, Status.OK, [1e-3]), **{**ARGS, "workload_key": "gemm[M=16]"})
    db.add(MeasureResult({"a": 1}, Status.OK, [1e-3]), **{**ARGS, "workload_key": "bmm[B=2]"})
    db.close()
    out = heron("records", "export", "-", "--workload", "gemm", db=tmp_path / "r.db", check=True).stdout
    assert [json.loads(ln)["workload_key"] for ln in out.splitlines()] == ["gemm[M=16]"]
    cmd = [sys.executable, "-m", "heron_core.cli", "records", "import", "-", "--db", str(tmp_path / "new.db")]
    proc = subprocess.run(cmd, input=out, capture_output=True, text=True, check=True)
    assert "imported 1, skipped 0 duplicates" in proc.stdout
    proc = heron("records", "export", "-", db=tmp_path / "none.db")
    assert proc.returncode == 2 and "no records database" in proc.stderr and not proc.stdout
    conn = sqlite3.connect(tmp_path / "r.db")
    assert conn.execute("SELECT COUNT(*) FROM records").fetchone()[0] == 2
