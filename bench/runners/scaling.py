"""Runner benchmark: tuning throughput against the number of build workers (runners ``local`` and
``ray``), the scaling efficiency, each runner's per-trial overhead against ``local`` on one node
(``ray`` on a local instance, ``rpc`` through a loopback tracker and server), and a Ray node killed
mid-batch (records written against trials asked).

Every runner measures the same candidates (one workload, kernels on one core); each configuration runs
one warm-up batch (two candidates per worker: pools, actors, TVM imports and each worker's first build),
then ``--repeats`` timed batches. trials/min = batch / wall seconds of ``runner.run``; build throughput =
batch / (wall - the measuring seconds), as builds of a batch finish before its measurements start;
scaling efficiency = throughput(w) / (w * throughput(1)). What bounds it is reported beside it: each
candidate's build seconds (in its worker), the workers' busy share of the build phase, the slowdown of a
build against 1 worker (the machine), the tail bound (the scaling the 1-worker build times allow when the
batch ends at its last build) and the driver's CPU milliseconds per candidate.

The default workload (gemm 128^3, ~0.1 s builds) shows runner overhead; a real tuning run's is a
figure-8 convolution (``--op conv2d --shape C2D1``: ~0.27 s median builds, a few of 1-4 s) in
batches of 64-128. On a 16-core machine (the integrator's device machine: bench/device.sh runner-scaling):

    taskset -c 0-15 python bench/runners/scaling.py --workers 1 2 4 8 --trials 128 --op conv2d --shape C2D1 --tag 16c

Here (2 cores shared with other work, under the benchmark lock):

    flock /tmp/heron-bench.lock taskset -c 0,1 python bench/runners/scaling.py --workers 1 2 --trials 8 --tag 2c

Writes bench/results/runners/runners_<tag>.{json,md}. ``--workers`` must include 1.
"""

from __future__ import annotations

import argparse
import heapq
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def parse() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--trials", type=int, default=8, help="candidates per timed batch (~12x the most workers: tail bound)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--op", default="gemm", help="operator of the workload (figure 8: conv2d --shape C2D1)")
    ap.add_argument("--shape", default="M=128,K=128,N=128", help="K=V,... or the operator's preset (C2D1)")
    ap.add_argument("--microkernel", default="vnni" if _has_vnni() else "generic")
    ap.add_argument("--skip", nargs="*", action="extend", default=[], choices=["local", "ray", "rpc", "kill"])
    ap.add_argument("--tag", default="")
    ap.add_argument("--out", default=os.path.join(os.path.dirname(os.path.dirname(__file__)), "results", "runners"))
    return ap.parse_args()


def _has_vnni() -> bool:
    from heron_cpu_dlboost.cpu import host_cpu

    return host_cpu().has_vnni


QUICK = {"number": 3, "repeat": 2, "min_repeat_ms": 0}


def make_task(a: argparse.Namespace):
    from heron_core import cli, config
    from heron_core.registry import registry
    from heron_core.task import PluginRef, Task, TaskSpec

    shape = config.parse_shape(registry().get("operator", a.op).factory, cli.parse_shape(a.shape))
    target = PluginRef(name="dlboost", params={"num_cores": 1, "microkernel": a.microkernel})
    return Task(TaskSpec(target=target, op=a.op, shape=shape, in_dtype="int8", out_dtype="int32"))


def time_runner(runner, task, points: list[dict], warmup: list[dict], repeats: int) -> dict:
    """Median over ``repeats`` batches: wall seconds, measuring seconds, trials and builds per minute,
    the build seconds of each candidate (in the workers), the driver's CPU seconds per candidate."""
    assert all(r.ok for r in runner.run(task, warmup)), "warm-up batch failed"
    walls, measures, builds, driver = [], [], [], []
    for _ in range(repeats):
        c0, t0 = time.process_time(), time.perf_counter()
        results = list(runner.run(task, points))
        walls.append(time.perf_counter() - t0)
        driver.append(time.process_time() - c0)
        measures.append(sum(r.run_s for r in results))
        bad = [r for r in results if not r.ok]
        if bad:
            raise RuntimeError(f"{len(bad)} candidates failed: {bad[0].status.value} {bad[0].error}")
        by_point = {json.dumps(r.point, sort_keys=True): r.build_s for r in results}
        builds.append([by_point[json.dumps(p, sort_keys=True)] for p in points])  # in submission order
    wall, measure = statistics.median(walls), statistics.median(measures)
    n = len(points)
    build_s = [statistics.median(b) for b in zip(*builds)]
    return {
        "wall_s": walls,
        "measure_s": measures,
        "build_s": build_s,
        "trials_per_min": 60 * n / wall,
        "builds_per_min": 60 * n / max(wall - measure, 1e-9),
        "per_trial_s": wall / n,
        "build_median_s": statistics.median(build_s),
        "driver_ms": 1000 * statistics.median(driver) / n,
        # share of the build phase (wall - measuring) the workers spent building
        "busy": sum(build_s) / (runner.params.parallel * max(wall - measure, 1e-9)),
    }


def tail_bound(seconds: list[float], workers: int) -> float:
    """The build scaling ``workers`` can reach on builds of these seconds, taken in order by the first free
    worker (what the pools do) when the batch ends at its last build."""
    free = [0.0] * workers
    for s in seconds:
        heapq.heappush(free, heapq.heappop(free) + s)
    return sum(seconds) / (workers * max(free))


def scaling(rows: list[dict], runner: str) -> None:
    """Efficiencies against 1 worker, and what bounds them: build efficiency = (busy(w) / busy(1)) / slowdown,
    slowdown = build seconds at w workers / at 1 (the machine: cores shared, clocks), busy <= tail bound =
    the build efficiency the 1-worker build times would allow, taken in order by w workers (the batch's
    last builds leave workers idle: the tuner asks for the next batch only after this one)."""
    one = next((r for r in rows if r["runner"] == runner and r["workers"] == 1), None)
    for r in rows:
        if one and r["runner"] == runner:
            r["build_efficiency"] = r["builds_per_min"] / (r["workers"] * one["builds_per_min"])
            r["trial_efficiency"] = r["trials_per_min"] / (r["workers"] * one["trials_per_min"])
            r["slowdown"] = sum(r["build_s"]) / sum(one["build_s"])
            r["tail_bound"] = tail_bound(one["build_s"], r["workers"])


def kill_node(a: argparse.Namespace, task, trials: int) -> dict:
    """A three-node cluster (two measuring nodes); the second is killed after the first result."""
    import ray
    from ray.cluster_utils import Cluster

    from heron_core.config import build_config
    from heron_core.config import plan as plan_config
    from heron_core.records import RecordDB
    from heron_core.registry import registry
    from heron_core.tuner import Tuner

    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "resources": {"heron_device": 1}})
    doomed = c.add_node(num_cpus=1, resources={"heron_device": 1})
    c.add_node(num_cpus=1)
    ray.init(address=c.address, log_to_driver=False, logging_level="warning")
    tmp = tempfile.mkdtemp(prefix="heron-bench-")
    seen = []

    def events(kind, data):
        if kind == "result":
            seen.append(data["result"])
            if len(seen) == 1:
                c.remove_node(doomed)

    config = {
        "target": task.spec.target.model_dump(),
        "cases": [{"op": task.spec.op, "shape": task.spec.shape}],
        "trials": trials,
        "batch_size": trials,
        "runner": {"name": "ray", "address": c.address, **QUICK},
        "db": os.path.join(tmp, "r.db"),
    }
    try:
        plan = plan_config(build_config(config), registry())
        db = RecordDB(plan.config.db)
        tuner = Tuner(plan, registry(), db, events)
        try:
            outcome = tuner.tune(plan.tasks[0])
            records = db.records(task.workload_key, task.target_key)
        finally:
            tuner.close()
            db.close()
    finally:
        ray.shutdown()
        c.shutdown()
        shutil.rmtree(tmp, ignore_errors=True)
    return {
        "trials": trials,
        "records": len(records),
        "ok": sum(r.ok for r in records),
        "failed": dict(outcome.failures),
        "lost": trials - len(records),
    }


def main() -> None:
    a = parse()
    home = tempfile.mkdtemp(prefix="hray")  # Ray's session files and auth token stay out of ~
    os.environ.update(HOME=home, RAY_TMPDIR=home)
    from heron_core.runner import LocalRunner, LocalRunnerParams
    from heron_core.space import SearchSpace

    task = make_task(a)
    sample = SearchSpace(task).sample(a.trials + 2 * max(a.workers), random.Random(0))
    points, warmup = sample[: a.trials], sample[a.trials :]
    rows = []

    def add(runner: str, workers: int, make) -> None:
        with make() as r:
            # two warm-up builds per worker: a pool hands work to whichever worker is free, and a worker's
            # first build pays ~0.1 s of one-time set-up
            row = {"runner": runner, "workers": workers, **time_runner(r, task, points, warmup[: 2 * workers], a.repeats)}
        rows.append(row)
        print(
            f"{runner:6s} {workers} workers: {row['trials_per_min']:.1f} trials/min, {row['builds_per_min']:.1f} builds/min, "
            f"build {row['build_median_s']:.3f} s (median), busy {row['busy']:.2f}, driver {row['driver_ms']:.1f} ms/candidate"
        )

    for w in [] if "local" in a.skip else a.workers:
        add("local", w, lambda: LocalRunner(LocalRunnerParams(parallel=w, **QUICK)))
    if "ray" not in a.skip:
        import ray
        from heron_runner_ray.runner import RayRunner, RayRunnerParams

        ray.init(address="local", num_cpus=max(a.workers), resources={"heron_device": 1}, include_dashboard=False, log_to_driver=False)
        try:
            for w in a.workers:
                add("ray", w, lambda: RayRunner(RayRunnerParams(parallel=w, **QUICK)))
        finally:
            ray.shutdown()
    if "rpc" not in a.skip:
        from heron_runner_rpc.loopback import loopback_tracker
        from heron_runner_rpc.runner import RPCRunner, RPCRunnerParams

        with loopback_tracker("heron-bench") as port:
            add("rpc", 1, lambda: RPCRunner(RPCRunnerParams(key="heron-bench", tracker_port=port, parallel=1, **QUICK)))
    for runner in ("local", "ray"):
        scaling(rows, runner)
    local1 = next((r for r in rows if r["runner"] == "local" and r["workers"] == 1), None)
    for r in rows:
        if local1 and r["workers"] == 1 and r["runner"] != "local":
            r["overhead_vs_local"] = r["per_trial_s"] / local1["per_trial_s"] - 1
    killed = None if "kill" in a.skip else kill_node(a, task, a.trials)
    shutil.rmtree(home, ignore_errors=True)
    write(a, task, rows, killed)


def write(a: argparse.Namespace, task, rows: list[dict], killed: dict | None) -> None:
    import importlib.metadata as md

    from common import machine

    info = machine()
    for dist in ("ray", "pebble", "tornado"):
        try:
            info["versions"][dist] = md.version(dist)
        except md.PackageNotFoundError:
            pass
    info["affinity"] = sorted(os.sched_getaffinity(0))
    one = next(r for r in rows if r["workers"] == 1)["build_s"]
    bounds = {w: tail_bound(one, w) for w in (2, 4, 8, 16) if w < len(one)}
    result = {"machine": info, "task": task.describe(), "trials": a.trials, "repeats": a.repeats, "rows": rows, "kill": killed,
              "tail_bounds": bounds}  # fmt: skip
    name = f"runners_{a.tag}" if a.tag else "runners"
    os.makedirs(a.out, exist_ok=True)
    with open(os.path.join(a.out, name + ".json"), "w") as f:
        json.dump(result, f, indent=1)
    lines = [
        f"# Runners: throughput against build workers, per-trial overhead ({info['date']})",
        "",
        f"{info['cpu']}, cores {info['affinity']}; {task.describe()}, kernels on one core; batches of {a.trials}, "
        f"median of {a.repeats}; versions: " + ", ".join(f"{k} {v}" for k, v in info["versions"].items()),
        "",
        "| runner | build workers | trials/min | builds/min | build scaling | trial scaling | s/trial | overhead vs local "
        "| build s (median) | busy | slowdown | tail bound | driver ms/cand. |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        eff = lambda k: f"{r[k]:.2f}" if k in r else ""  # noqa: E731
        over = f"{100 * r['overhead_vs_local']:+.1f}%" if "overhead_vs_local" in r else ""
        lines.append(
            f"| {r['runner']} | {r['workers']} | {r['trials_per_min']:.1f} | {r['builds_per_min']:.1f} | "
            f"{eff('build_efficiency')} | {eff('trial_efficiency')} | {r['per_trial_s']:.3f} | {over} | "
            f"{r['build_median_s']:.3f} | {r['busy']:.2f} | {eff('slowdown')} | {eff('tail_bound')} | {r['driver_ms']:.1f} |"
        )
    lines += [
        "",
        "build s: one candidate's build in a worker (median); busy: share of the build phase the workers spent building; "
        "slowdown: build seconds against 1 worker (the machine); tail bound: the build scaling the 1-worker build times "
        "allow at the batch barrier; build scaling ~ (busy / busy at 1 worker) / slowdown.",
        "",
        f"Tail bound of this batch from the 1-worker build times (single build {statistics.median(one):.3f} s median, "
        f"{max(one):.3f} s max): " + ", ".join(f"{bound:.2f} at {w} workers" for w, bound in bounds.items()) + ".",
    ]
    if killed:
        lines += ["", f"Ray node killed after the first result: {killed['records']} records of {killed['trials']} trials "
                  f"({killed['ok']} ok, failures {killed['failed'] or 'none'}), {killed['lost']} lost."]  # fmt: skip
    with open(os.path.join(a.out, name + ".md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
