"""Runner ``ray`` on a two-node (then three-node) Ray cluster on this machine, and a local instance
through the CLI. Ray writes its session files and auth token into a temporary HOME."""

import os
import random
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile

import pytest

ray = pytest.importorskip("ray")
from heron_runner_ray.runner import RayRunner, RayRunnerParams  # noqa: E402
from ray.cluster_utils import Cluster  # noqa: E402

from heron_core.config import build_config  # noqa: E402
from heron_core.config import plan as plan_config  # noqa: E402
from heron_core.errors import ConfigError  # noqa: E402
from heron_core.measure import Status  # noqa: E402
from heron_core.records import RecordDB  # noqa: E402
from heron_core.registry import registry  # noqa: E402
from heron_core.space import SearchSpace  # noqa: E402
from heron_core.task import PluginRef, Task, TaskSpec  # noqa: E402
from heron_core.tuner import Tuner  # noqa: E402
from heron_cpu_dlboost.cpu import host_cpu  # noqa: E402

MICROKERNEL = "vnni" if host_cpu().has_vnni else "generic"
TARGET = {"name": "dlboost", "num_cores": 1, "microkernel": MICROKERNEL}
QUICK = {"number": 1, "repeat": 2, "min_repeat_ms": 0}


@pytest.fixture(scope="module")
def ray_home():
    """HOME and Ray's temp dir in a short temporary path (Ray's socket paths must stay under 108 bytes)."""
    home = tempfile.mkdtemp(prefix="hray")
    saved = {k: os.environ.get(k) for k in ("HOME", "RAY_TMPDIR")}
    os.environ.update(HOME=home, RAY_TMPDIR=home)
    yield home
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
    shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(scope="module")
def cluster(ray_home):
    """Head: builds only; worker: builds and measures (label heron=measure, one heron_device)."""
    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "labels": {"heron": "build"}})
    worker = c.add_node(num_cpus=1, labels={"heron": "measure"}, resources={"heron_device": 1})
    ray.init(address=c.address, log_to_driver=False, logging_level="warning")
    yield c, c.head_node.node_id, worker.node_id
    ray.shutdown()
    c.shutdown()


def gemm(n=32) -> Task:
    target = PluginRef(name="dlboost", params={k: v for k, v in TARGET.items() if k != "name"})
    return Task(TaskSpec(target=target, op="gemm", shape={"M": n, "K": n, "N": n}, in_dtype="int8", out_dtype="int32"))


def test_builds_spread_measurements_only_on_labelled_node(cluster):
    c, head, worker = cluster
    task = gemm()
    points = SearchSpace(task).sample(4, random.Random(0))
    broken = {**points[0], "i0": 3}  # not a tiling of M=32: the build fails
    with RayRunner(RayRunnerParams(address=c.address, device_label="heron=measure", parallel=2, **QUICK)) as runner:
        list(runner.run(task, points[:2]))  # both build actors started and prepared (one may start slower)
        results = list(runner.run(task, [*points, broken]))
    assert len(results) == 5
    bad = [r for r in results if r.status is Status.BUILD_ERROR]
    assert [r.point for r in bad] == [broken] and bad[0].error
    ok = [r for r in results if r.ok]
    assert len(ok) == 4 and all(r.latency > 0 and r.build_s > 0 for r in ok)
    assert {r.nodes["measure"] for r in ok} == {worker}  # only where the label matches
    assert {r.nodes["build"] for r in results} == {head, worker}  # one build actor per CPU, spread


def test_run_timeout_kills_and_replaces_the_measuring_actor(cluster):
    c, _, worker = cluster
    task = gemm()
    points = SearchSpace(task).sample(2, random.Random(1))
    params = RayRunnerParams(address=c.address, device_label="heron=measure", parallel=2, min_repeat_ms=2000, run_timeout=0.5)
    with RayRunner(params) as runner:
        results = list(runner.run(task, points))
    # the second candidate ran on the actor that replaced the first one's
    assert [r.status for r in results] == [Status.RUN_TIMEOUT] * 2
    assert all(r.nodes["measure"] == worker and "0.5 s" in r.error for r in results)


def test_node_killed_mid_batch_loses_nothing(cluster, tmp_path):
    c, head, _ = cluster
    doomed = c.add_node(num_cpus=1, labels={"heron": "measure"}, resources={"heron_device": 1})
    measured = []

    def kill_on_first_result(kind, data):
        if kind == "result":
            measured.append(data["result"])
            if len(measured) == 1:
                c.remove_node(doomed)

    db = tmp_path / "r.db"
    config = {
        "target": TARGET,
        "cases": [{"op": "gemm", "shape": {"M": 32, "K": 32, "N": 32}}],
        "trials": 8,
        "batch_size": 6,
        "runner": {"name": "ray", "address": c.address, **QUICK},
        "db": str(db),
    }
    plan = plan_config(build_config(config), registry())
    records = RecordDB(db)
    tuner = Tuner(plan, registry(), records, kill_on_first_result)
    try:
        outcome = tuner.tune(plan.tasks[0])
    finally:
        tuner.close()
        records.close()
    assert outcome.total == 8 and outcome.measured_now == 8 and not outcome.failures
    conn = sqlite3.connect(db)
    rows = conn.execute("SELECT status, COUNT(DISTINCT point_key) FROM records GROUP BY status").fetchall()
    assert rows == [("ok", 8)]
    assert doomed.node_id not in {n["NodeID"] for n in ray.nodes() if n["Alive"]}
    assert {r.nodes["measure"] for r in measured[1:]} <= {head, cluster[2]} | {doomed.node_id}


def test_unreachable_cluster_is_one_clear_error():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(ConfigError, match="cannot reach the Ray cluster"):
        RayRunner(RayRunnerParams(address=f"127.0.0.1:{port}", connect_timeout=2))


def test_cli_tunes_on_a_local_ray_instance(ray_home, tmp_path):
    db = tmp_path / "r.db"
    cmd = [sys.executable, "-m", "heron_core.cli", "tune", "--target", "dlboost", "--target-param", "num_cores=1"]
    cmd += ["--target-param", f"microkernel={MICROKERNEL}", "--shape", "32,32,32", "--trials", "4", "--batch-size", "4"]
    cmd += ["--runner", "ray", "--runner-param", "parallel=2", "--runner-param", "repeat=2", "--quiet", "--db", str(db)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env={**os.environ, "COLUMNS": "200"})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "PASS / Case [32, 32, 32]" in proc.stdout
    assert sqlite3.connect(db).execute("SELECT COUNT(*) FROM records WHERE status='ok'").fetchone()[0] == 4
