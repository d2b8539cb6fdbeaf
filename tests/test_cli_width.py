"""The command line at 80 columns: no line wider than the terminal, chart titles inside the figure."""

import json
import os
import subprocess
import sys

import pytest
from matplotlib.text import Text

from heron_core import report
from heron_core.measure import MeasureResult, Status
from heron_core.records import RecordDB

LONG_WORKLOAD = "conv3d[N=1,C=64,D=16,H=56,W=56,K=128,T=3,R=3,S=3,stride=1,pad=1,dilation=1,channels_last=1]:int8->int32"
LONG_TARGET = "dlboost/sapphirerapids/16c/vnni/l1=48KiB/l2=2048KiB"


def heron80(*args) -> subprocess.CompletedProcess:
    env = {**os.environ, "COLUMNS": "80"}
    proc = subprocess.run([sys.executable, "-m", "heron_core.cli", *args], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    text = proc.stdout if "--json" not in args else ""  # JSON lines are for programs
    wide = [line for line in (text + proc.stderr).splitlines() if len(line) > 80]
    assert not wide, "\n".join(wide)
    return proc


@pytest.fixture(scope="module")
def db(tmp_path_factory):
    path = tmp_path_factory.mktemp("width") / "r.db"
    rdb = RecordDB(path)
    task = {"target": {"name": "dlboost", "params": {}}, "op": "conv3d", "shape": {}, "in_dtype": "int8", "out_dtype": "int32"}
    point = {f"knob_with_a_long_name_{i}": i for i in range(40)}
    for i, status in enumerate([Status.OK, Status.BUILD_ERROR, Status.OK, Status.RUN_TIMEOUT, Status.WRONG_RESULT]):
        result = MeasureResult({**point, "i": i}, status, [1e-4 * (i + 1)] if status is Status.OK else [], build_s=1.0, run_s=0.5)
        rdb.add(result, workload_key=LONG_WORKLOAD, target_key=LONG_TARGET, task=task, target_info={}, searcher="cga",
                run_id=None, versions={})
    rdb.close()
    return path


def test_plugins_fit_80_columns():
    short = heron80("plugins").stdout
    assert "heron-cpu-dlboost" in short and "…" in short
    lines = short.splitlines()
    assert lines[0].split() == ["kind", "name", "distribution", "here", "description"]
    kinds = ("target", "operator", "searcher", "cost_model", "runner", "frontend")
    assert all(line.startswith(kinds) for line in lines if "heron-" in line)  # one line per plugin, cut to fit
    long = heron80("plugins", "--long").stdout
    assert "heron-core 0.1.0" in long and "micro-kernel" in long  # the full text, wrapped
    one = heron80("plugins", "local").stdout
    assert "run_timeout" in one and "30.0" in one


def test_best_fits_80_columns_and_shows_points_on_request(db):
    plain = heron80("best", "--db", str(db)).stdout
    assert "knob_with_a_long_name_3" not in plain and "0.1000" in plain
    with_points = heron80("best", "--db", str(db), "--points").stdout
    assert "knob_with_a_long_name_39=39" in with_points
    record = json.loads(heron80("best", "--db", str(db), "--json").stdout)
    assert record["workload_key"] == LONG_WORKLOAD and record["point"]["knob_with_a_long_name_39"] == 39
    assert record["trials"] == 5 and record["ok"] == 2


def test_report_fits_80_columns(db, tmp_path):
    out = heron80("report", "--db", str(db), "--out", str(tmp_path)).stdout
    assert "build_error=1 run_timeout=1 wrong_result=1" in " ".join(out.split()) and "2/5" in out


def test_chart_titles_stay_inside_the_figure():
    rep = report.WorkloadReport(LONG_WORKLOAD + "," * 3 + "W" * 130, LONG_TARGET)
    fig = report.figure(rep)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    texts = [t for t in fig.findobj(Text) if t.get_text() and t.get_visible()]
    assert any(LONG_TARGET in t.get_text() for t in texts)
    for t in texts:
        box = t.get_window_extent(renderer)
        assert box.x0 >= 0 and box.x1 <= fig.bbox.x1 and box.y0 >= 0 and box.y1 <= fig.bbox.y1, t.get_text()
