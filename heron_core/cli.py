"""``heron``: tune operators, list plugins, show the best records, report, export and import records."""

from __future__ import annotations

import json
import math
import re
import signal
import sys
import textwrap
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

import typer
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table
from rich.text import Text

from heron_core.errors import ConfigError, HeronError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    help="Heron: constrained auto-tuning of tensor operators.",
)
records_app = typer.Typer(no_args_is_help=True, help="Move records between databases as JSON Lines.")
app.add_typer(records_app, name="records")
network_app = typer.Typer(no_args_is_help=True, help="Networks: the tunable layers of a model or a named network.")
app.add_typer(network_app, name="network")
out = Console()
err = Console(stderr=True)
INTERRUPTED = "interrupted: every finished measurement is recorded; re-run the same command to resume"


def default_db() -> Path:
    import platformdirs

    return Path(platformdirs.user_data_dir("heron")) / "records.db"


def _open_db(path: Path | None, must_exist: bool = True):
    from heron_core.records import RecordDB

    path = path or default_db()
    if must_exist and not path.exists():
        raise ConfigError(f"no records database at {path}")
    return RecordDB(path)


def _value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _pairs(items: list[str] | None, what: str) -> dict[str, Any]:
    result = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise HeronError(f"{what} must look like KEY=VALUE, got '{item}'")
        result[key.strip()] = _value(value.strip())
    return result


def parse_shape(text: str) -> dict[str, int] | list[int] | str:
    """``M=64,K=64,N=64`` (named), ``64,64,64`` / ``64x64x64`` (the operator's order) or a preset
    name (``C2D1``), optionally with named overrides (``C2D1,channels_last=1``)."""
    from heron_core.errors import ConfigError

    if re.match(r"[A-Za-z_][\w-]*\s*(,|$)", text.strip()):
        return text.strip()  # a preset, resolved (overrides included) by config.parse_shape
    parts = [p.strip() for p in re.split(r",|(?<=\d)x(?=\d)", text) if p.strip()]
    try:
        if all("=" in p for p in parts):
            return {k.strip(): int(v) for k, v in (p.split("=", 1) for p in parts)}
        return [int(p) for p in parts]
    except ValueError:
        raise ConfigError(f"--shape must be NAME=INT,... or INT,INT,...; got '{text}'") from None


def _section(name: str | None, params: dict) -> dict | None:
    if name is None and not params:
        return None
    return {**({"name": name} if name else {}), **params}


@app.command()
def tune(
    target: Optional[str] = typer.Option(None, help="Target plugin, e.g. dlboost."),
    op: Optional[str] = typer.Option(None, help="Operator, e.g. gemm."),
    shape: Optional[str] = typer.Option(None, help="Shape: M=64,K=64,N=64, 64,64,64 (in order) or a preset, e.g. C2D1."),
    in_dtype: Optional[str] = typer.Option(None, "--in-dtype", help="Input dtype (int8 = u8 activations x s8 weights)."),
    out_dtype: Optional[str] = typer.Option(None, "--out-dtype", help="Output dtype."),
    trials: Optional[int] = typer.Option(None, help="Measurement budget per workload (total, across resumed runs)."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", help="Candidates measured per round."),
    search: Optional[str] = typer.Option(None, help="Searcher plugin."),
    model: Optional[str] = typer.Option(None, help="Cost-model plugin."),
    runner: Optional[str] = typer.Option(None, help="Runner plugin."),
    db: Optional[Path] = typer.Option(None, help="Records database (SQLite). Default: the user data dir."),
    seed: Optional[int] = typer.Option(None, help="Random seed."),
    config: Optional[Path] = typer.Option(None, "-c", "--config", help="JSON or TOML config (or an original Heron JSON)."),
    target_param: Optional[list[str]] = typer.Option(None, "--target-param", help="KEY=VALUE for the target plugin."),
    search_param: Optional[list[str]] = typer.Option(None, "--search-param", help="KEY=VALUE for the searcher."),
    model_param: Optional[list[str]] = typer.Option(None, "--model-param", help="KEY=VALUE for the cost model."),
    runner_param: Optional[list[str]] = typer.Option(None, "--runner-param", help="KEY=VALUE for the runner."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress display: only the PASS/FAIL lines and errors."),
    json_events: bool = typer.Option(False, "--json", help="Machine-readable events on stdout, one JSON object per line."),
    network: Optional[str] = typer.Option(
        None, help="Tune a network: an ONNX file or a named one (resnet50:batch=1); --trials is its total."
    ),
    batch: Optional[int] = typer.Option(
        None, "--batch", help="The network's batch size (presets; free input dimensions of a model)."
    ),
    strategy: str = typer.Option("gradient", help="Network task scheduler: gradient or round_robin."),
) -> None:
    """Tune operators on a target; every measurement is recorded, and a re-run resumes.

    Ctrl-C stops after the batch being measured (exit status 130); a second Ctrl-C stops at once."""
    args = dict(locals())
    _guard(lambda: _tune(**args))


def _tune(**a) -> None:
    from heron_core import config as cfgmod
    from heron_core.records import RecordDB
    from heron_core.registry import registry
    from heron_core.task import Task
    from heron_core.tuner import Tuner

    overrides = {
        k: v
        for k, v in {
            "target": _section(a["target"], _pairs(a["target_param"], "--target-param")),
            "search": _section(a["search"], _pairs(a["search_param"], "--search-param")),
            "model": _section(a["model"], _pairs(a["model_param"], "--model-param")),
            "runner": _section(a["runner"], _pairs(a["runner_param"], "--runner-param")),
            "in_dtype": a["in_dtype"],
            "out_dtype": a["out_dtype"],
            "trials": a["trials"],
            "batch_size": a["batch_size"],
            "db": str(a["db"]) if a["db"] else None,
            "seed": a["seed"],
        }.items()
        if v is not None
    }
    if a["op"] or a["shape"]:
        overrides["cases"] = [{"op": a["op"] or "gemm", "shape": parse_shape(a["shape"]) if a["shape"] else None}]
    cfg, legacy, notes = cfgmod.load(a["config"], overrides)
    reg = registry()
    plan = cfgmod.plan(cfg, reg, legacy)
    for note in notes + plan.notes:
        err.print(f"[dim]note: {note}[/dim]")
    if a["network"]:
        if a["op"] or a["shape"]:
            raise ConfigError("--network tunes the network's layers: leave out --op and --shape")
        dtypes = (cfg.in_dtype, cfg.out_dtype) if {"in_dtype", "out_dtype"} & cfg.model_fields_set else None
        return _tune_network(a, plan, reg, dtypes)
    tasks = [Task(spec, reg) for spec in plan.tasks]  # every input checked before anything is written
    if getattr(reg.get("runner", cfg.runner.name).factory, "measures_here", True):
        for task in tasks:
            task.target.check_host()
    db = RecordDB(cfg.db or default_db())
    view: View = JsonEvents() if a["json_events"] else ProgressDisplay(a["quiet"])
    stop = threading.Event()
    tuner = Tuner(plan, reg, db, view.event, stop.is_set)
    passed, unfinished = 0, 0
    try:
        with view, _stop_on_sigint(stop, view.stopping):
            for spec in plan.tasks:
                if stop.is_set():
                    unfinished += 1
                    continue
                outcome = tuner.tune(spec)
                if outcome.interrupted:
                    view.task_end(outcome, None)
                    unfinished += 1
                else:
                    summary = _summary(outcome)
                    passed += summary["best_latency_s"] is not None
                    view.task_end(outcome, summary)
    except KeyboardInterrupt:  # the second Ctrl-C
        unfinished = 1
    except HeronError as exc:  # e.g. the records database failed mid-run: --json readers still get run_end
        view.run_end({"status": "error", "exit_code": exc.exit_code, "error": str(exc), "db": str(db.path)})
        raise
    finally:
        tuner.close()
        db.close()
    status = "interrupted" if unfinished else "pass" if passed == len(plan.tasks) else "fail"
    code = {"interrupted": 130, "pass": 0, "fail": 1}[status]
    view.run_end({"status": status, "exit_code": code, "tasks": len(plan.tasks), "passed": passed, "db": str(db.path)})
    if unfinished:
        err.print(INTERRUPTED, highlight=False, soft_wrap=True)
    elif not (a["quiet"] or a["json_events"]):
        err.print(f"[dim]records: {db.path}[/dim]")
    if code:
        raise typer.Exit(code)


def _tune_network(a: dict, plan, reg, dtypes) -> None:
    from pydantic import ValidationError

    from heron_core import cli_network
    from heron_core.records import RecordDB
    from heron_core.scheduler import SchedulerParams, TaskScheduler
    from heron_core.task import explain
    from heron_core.tuner import Tuner

    try:
        params = SchedulerParams(strategy=a["strategy"])
    except ValidationError as exc:
        raise ConfigError(f"--strategy: {explain(exc)}") from None
    target_ref = plan.tasks[0].target
    network, items = cli_network.resolve(a["network"], reg, a["batch"], target_ref, dtypes)
    if not network.layers:
        raise ConfigError(f"{network.source}: no layer Heron can tune (see heron network show)")
    for item in items:
        if item.task is None:
            err.print(f"[dim]not tunable on this target: {escape(item.layer.name)} ({escape(item.reason or '')})[/dim]")
    if not any(i.task for i in items):
        raise ConfigError(f"no layer of {network.name} is tunable on target '{target_ref.name}'")
    if getattr(reg.get("runner", plan.config.runner.name).factory, "measures_here", True):
        next(i.task for i in items if i.task).target.check_host()
    db = RecordDB(plan.config.db or default_db())
    view = cli_network.NetworkJson() if a["json_events"] else cli_network.NetworkProgress(err, a["quiet"])
    stop = threading.Event()
    tuner = Tuner(plan, reg, db, view.event, stop.is_set)
    scheduler = TaskScheduler(tuner, network, items, plan.config.trials, params, view.event)
    try:
        with view, _stop_on_sigint(stop, view.stopping):
            outcome = scheduler.run()
    except KeyboardInterrupt:  # the second Ctrl-C
        outcome = None
    finally:
        tuner.close()
        db.close()
    if outcome is None or outcome.interrupted:
        err.print(INTERRUPTED, highlight=False, soft_wrap=True)
        raise typer.Exit(130)
    if not a["json_events"]:
        cli_network.print_outcome(out, outcome, items)
    if not (a["quiet"] or a["json_events"]):
        err.print(f"[dim]records: {db.path}; heron report --network {a['network']}[/dim]")
    if outcome.latency_s is None:
        raise typer.Exit(1)


@contextmanager
def _stop_on_sigint(stop: threading.Event, notice: Callable[[], None]) -> Iterator[None]:
    """The first SIGINT sets ``stop`` (the tuner ends after the batch being measured); the next
    raises KeyboardInterrupt as usual. Worker processes ignore SIGINT (pebble)."""

    def handler(signum, frame) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()
        notice()

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _finite(x: float | None) -> float | None:
    return x if x is not None and math.isfinite(x) else None


def _summary(outcome) -> dict[str, Any]:
    """What a finished task achieved: best latency, GOPS, the numpy baseline (for PASS/FAIL lines and --json)."""
    from heron_core.tuner import numpy_seconds

    task, best = outcome.task, outcome.best
    summary: dict[str, Any] = {
        "case": task.op.case(),
        "workload_key": task.workload_key,
        "target_key": task.target_key,
        "trials": outcome.total,
        "measured_now": outcome.measured_now,
        "failures": dict(sorted(outcome.failures.items())),
        "exhausted": outcome.exhausted,
        "searcher": outcome.searcher,
        "best_latency_s": None,
    }
    if best is not None:
        base = numpy_seconds(task)
        summary.update(
            best_latency_s=best.latency_s,
            gops=task.op.op_count() / best.latency_s / 1e9,
            numpy_s=base,
            speedup=base / best.latency_s,
            record_id=best.id,
            point=best.point,
        )
    return summary


class View:
    """What ``heron tune`` shows: tuner events, then each task's end and the run's end."""

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        pass

    def event(self, kind: str, data: dict) -> None:
        pass

    def stopping(self) -> None:
        """The first Ctrl-C arrived (called from the signal handler)."""

    def task_end(self, outcome, summary: dict | None) -> None:
        """A task finished (``summary``) or was interrupted (None)."""

    def run_end(self, data: dict) -> None:
        pass


class ProgressDisplay(View):
    """Rich progress bar fed by the tuner's events (on stderr), then a PASS/FAIL line per task (stdout)."""

    def __init__(self, quiet: bool):
        self.quiet = quiet
        self.bar = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("best {task.fields[best]}  failed {task.fields[failed]}  ETA"),
            TimeRemainingColumn(),
            console=err,
            disable=quiet,
        )
        self.id = None
        self.op_count = None

    def __enter__(self):
        self.bar.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self.bar.__exit__(*exc)

    def _best(self, seconds: float) -> str:
        if not math.isfinite(seconds):
            return "-"
        gops = f", {self.op_count / seconds / 1e9:.1f} GOPS" if self.op_count else ""
        return f"{seconds * 1e3:.4f} ms{gops}"

    def event(self, kind: str, data: dict) -> None:
        if kind == "task":
            self.op_count = data["op_count"]
            self.id = self.bar.add_task(
                data["task"],
                total=data["total"],
                completed=data["done"],
                best=self._best(data["best_latency_s"]),
                failed=data["failed"],
            )
        elif kind == "result" and self.id is not None:
            best = self._best(data["best_latency_s"])
            self.bar.update(self.id, completed=data["done"], best=best, failed=data["failed"])
        elif kind == "task_done" and self.id is not None:
            self.bar.remove_task(self.id)
            self.id = None

    def stopping(self) -> None:
        if self.id is not None:
            self.bar.update(self.id, description="stopping after this batch (Ctrl-C again: at once)")

    def task_end(self, outcome, summary: dict | None) -> None:
        if summary is not None:
            _report(outcome, summary)


class JsonEvents(View):
    """``--json``: every event as one JSON object per line on stdout, and nothing else there."""

    def __init__(self):
        self.op_count = None

    @staticmethod
    def emit(data: dict) -> None:
        sys.stdout.write(json.dumps(data, default=str) + "\n")
        sys.stdout.flush()

    def _gops(self, seconds: float | None) -> float | None:
        return self.op_count / seconds / 1e9 if self.op_count and seconds else None

    def event(self, kind: str, data: dict) -> None:
        keys = {k: data[k] for k in ("task", "workload_key", "target_key")}
        if kind == "task":
            self.op_count = data["op_count"]
            best = _finite(data["best_latency_s"])
            self.emit(
                {
                    "event": "task_start",
                    **keys,
                    **{k: data[k] for k in ("done", "total", "knobs", "op_count", "failed")},
                    "best_latency_s": best,
                    "best_gops": self._gops(best),
                }
            )
        elif kind == "result":
            r, best = data["result"], _finite(data["best_latency_s"])
            latency = _finite(r.latency)
            self.emit(
                {
                    "event": "result",
                    **keys,
                    "done": data["done"],
                    "total": data["total"],
                    "status": r.status.value,
                    "latency_s": latency,
                    "gops": self._gops(latency),
                    "best_latency_s": best,
                    "best_gops": self._gops(best),
                    "failed": data["failed"],
                    "error": r.error,
                    "build_s": r.build_s,
                    "run_s": r.run_s,
                    "point": r.point,
                    "record_id": data["record"].id if data["record"] else None,
                }
            )
        elif kind == "exhausted":
            self.emit({"event": "exhausted", **keys})

    def task_end(self, outcome, summary: dict | None) -> None:
        if summary is None:
            best = outcome.best.latency_s if outcome.best else None
            summary = {
                "workload_key": outcome.task.workload_key,
                "target_key": outcome.task.target_key,
                "trials": outcome.total,
                "measured_now": outcome.measured_now,
                "best_latency_s": best,
            }
            status = "interrupted"
        else:
            status = "pass" if summary["best_latency_s"] is not None else "fail"
        self.emit({"event": "task_end", "status": status, "task": outcome.task.describe(), **summary})

    def run_end(self, data: dict) -> None:
        self.emit({"event": "run_end", **data})


def _report(outcome, summary: dict) -> None:
    """The PASS / FAIL line of a finished task."""
    fails = ", ".join(f"{k} {v}" for k, v in summary["failures"].items())
    stop = f"; searcher '{outcome.searcher}' found no new valid point" if outcome.exhausted else ""
    case = summary["case"]
    if summary["best_latency_s"] is None:
        out.print(f"FAIL / Case {case}: no correct kernel in {outcome.total} trials ({fails or 'no failures recorded'}{stop})")
        return
    lat, base = summary["best_latency_s"], summary["numpy_s"]
    out.print(
        f"PASS / Case {case}, latency {lat * 1e3:.4f} ms, {summary['gops']:.1f} GOPS, "
        f"{summary['speedup']:.1f}x numpy ({base * 1e3:.4f} ms)  "
        f"[{outcome.task.workload_key}, {outcome.total} trials, {outcome.measured_now} measured now"
        + (f", failures: {fails}" if fails else "")
        + stop
        + "]",
        highlight=False,
    )


@app.command()
def plugins(
    name: Optional[str] = typer.Argument(None, help="One plugin: its full description and parameters."),
    long: bool = typer.Option(False, "--long", help="Full descriptions and versions (wrapped)."),
) -> None:
    """Every registered implementation: kind, name, distribution, whether a target runs here, what it does."""

    def show():
        from heron_core.registry import registry

        reg = registry()
        specs = [s for s in reg.all_specs() if name in (None, s.name)]
        if name is not None and not specs:
            raise ConfigError(f"no plugin named '{name}' (heron plugins lists them)")
        if name is not None:
            for spec in specs:
                _plugin_details(spec)
            return
        rows, unavailable = [], []
        for spec in specs:
            why = _target_unavailable(spec) if spec.kind == "target" else None
            here = "" if spec.kind != "target" else ("no" if why else "yes")
            if why:
                unavailable.append(f"target '{spec.name}' cannot run on this machine: {why}")
            rows.append((spec.kind, spec.name, spec.distribution, here, spec.description, spec.version))
        if long:  # one block per plugin: the description wrapped under its name
            for kind, plugin, dist, here, text, version in rows:
                runs = f", runs here: {here}" if here else ""
                out.print(f"[bold]{kind} {plugin}[/bold] ({dist} {version}{runs})", highlight=False)
                out.print(Text(textwrap.indent(textwrap.fill(text, max(out.width - 4, 20)), "    ")))
        else:  # one line per plugin: descriptions cut to the width left
            headers = ("kind", "name", "distribution", "here", "description")
            widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers[:4])]
            left = max(out.width - sum(widths) - 2 * len(widths), 12)
            table = Table.grid(padding=(0, 2))
            for w in widths:
                table.add_column(no_wrap=True, width=w)
            table.add_column(no_wrap=True, width=left)
            table.add_row(*headers, style="bold")
            for row in rows:
                text = row[4] if len(row[4]) <= left else row[4][: left - 1] + "…"
                table.add_row(*row[:4], Text(text))
            out.print(table, highlight=False)
        for line in unavailable:
            out.print(escape(line))
        if not long:
            out.print("[dim]details: heron plugins NAME; every description: heron plugins --long[/dim]")
        for plugin, why in reg.broken.items():
            err.print(f"[red]plugin {plugin} failed to load: {why}[/red]")

    _guard(show)


def _plugin_details(spec) -> None:
    out.print(f"[bold]{spec.kind} {spec.name}[/bold] ({spec.distribution} {spec.version})", highlight=False)
    out.print(escape(spec.description), highlight=False)
    fields = spec.params.model_fields
    if not fields:
        out.print("parameters: none")
        return
    table = Table("parameter", "default", "type", box=box.SIMPLE_HEAD, pad_edge=False)
    for key, field in fields.items():
        default = "(required)" if field.is_required() else repr(field.get_default(call_default_factory=True))
        kind = getattr(field.annotation, "__name__", None) or str(field.annotation).replace("typing.", "")
        table.add_row(key, escape(default), escape(kind))
    out.print(table)


def _target_unavailable(spec) -> str | None:
    """Why a target with default parameters cannot run its kernels here (its ``check_host``), or None."""
    from heron_core.errors import TargetUnavailable

    try:
        spec.factory(spec.params()).check_host()
    except TargetUnavailable as exc:
        return str(exc)
    except Exception as exc:  # a target that cannot even be set up here
        return f"{type(exc).__name__}: {exc}"
    return None


@app.command()
def best(
    db: Optional[Path] = typer.Option(None, help="Records database. Default: the user data dir."),
    workload: Optional[str] = typer.Option(None, help="Only this workload key."),
    points: bool = typer.Option(False, "--points", help="Also each best record's point (its knob values)."),
    json_out: bool = typer.Option(False, "--json", help="One JSON object per workload and target, point included."),
) -> None:
    """The best record of every workload (and target) in the database."""

    def show():
        rdb = _open_db(db)
        try:
            counts = {(w, t): (n, ok) for w, t, n, ok in rdb.summary()}
            records = rdb.best(workload)
        finally:
            rdb.close()
        if json_out:
            for r in records:
                n, ok = counts[(r.workload_key, r.target_key)]
                JsonEvents.emit(
                    {"workload_key": r.workload_key, "target_key": r.target_key, "latency_s": r.latency_s,
                     "trials": n, "ok": ok, "record_id": r.id, "point": r.point}
                )
            return
        table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
        table.add_column("workload / target", overflow="fold", ratio=1)
        for column in ("latency ms", "trials", "ok", "record"):
            table.add_column(column, justify="right", no_wrap=True)
        for r in records:
            n, ok = counts[(r.workload_key, r.target_key)]
            table.add_row(Text(f"{r.workload_key}\n  on {r.target_key}"), f"{r.latency_s * 1e3:.4f}", str(n), str(ok), str(r.id))
        out.print(table)
        if points:
            for r in records:
                out.print(Text(f"record {r.id}: {r.workload_key} on {r.target_key}", style="bold"))
                knobs = " ".join(f"{k}={v}" for k, v in r.point.items())
                out.print(Text(textwrap.indent(textwrap.fill(knobs, max(out.width - 4, 20)), "    ")))
        else:
            out.print("[dim]points: heron best --points (or --json)[/dim]")

    _guard(show)


@app.command()
def export(
    out_dir: Path = typer.Argument(..., help="Library directory (created, or updated in place)."),
    db: Optional[Path] = typer.Option(None, help="Records database. Default: the user data dir."),
    op: Optional[str] = typer.Option(None, help="Only workloads of this operator."),
    target: Optional[str] = typer.Option(None, help="Only targets whose key contains this (e.g. dlboost)."),
    workload: Optional[str] = typer.Option(None, help="Only workload keys containing this."),
    all_: bool = typer.Option(False, "--all", help="Every workload in the database."),
    network: Optional[str] = typer.Option(
        None, help="Every layer of this network (as tuned with --network); lib.find(layer=NAME)."
    ),
    batch: Optional[int] = typer.Option(None, "--batch", help="The network's batch size, as tuned."),
) -> None:
    """Rebuild the best kernel of each chosen workload, re-check it, and write a loadable library."""

    def run():
        from heron_core.export import export_library, select, select_network
        from heron_core.registry import registry

        rdb = _open_db(db)
        layers = None
        try:
            if network:
                items = _network_items(network, batch, target)
                records, layers, missing = select_network(rdb, items, target)
                for line in missing:
                    err.print(f"[dim]not exported: {escape(line)}[/dim]")
            else:
                records = select(rdb, op=op, target=target, workload=workload, everything=all_)
        finally:
            rdb.close()
        for entry in export_library(records, out_dir, registry(), layers):
            speed = f"{entry['latency_s'] * 1e3:.4f} ms, {entry['gops']:.1f} GOPS"
            out.print(f"exported {entry['workload_key']} ({speed}) -> {out_dir / entry['module']}")
        out.print(f"load it with: heron_core.load_library({str(out_dir)!r})", highlight=False)

    _guard(run)


@app.command()
def build(
    model: Path = typer.Argument(..., help="ONNX model (int8 QDQ products run Heron's kernels)."),
    out_dir: Path = typer.Option(..., "-o", "--out", help="Output directory: model.so, kernels/, model.json."),
    db: Optional[Path] = typer.Option(None, help="Records database. Default: the user data dir."),
    target_param: Optional[list[str]] = typer.Option(None, "--target-param", help="dlboost parameter KEY=VALUE."),
    check: bool = typer.Option(False, "--check", help="Compare the outputs with ONNX Runtime's on random inputs."),
    tune_config: Optional[Path] = typer.Option(
        None, "--tune-config", help="Only write `heron tune -c` configs (FILE, FILE.1, ...) for the model's products."
    ),
    trials: int = typer.Option(32, help="Trials per workload in --tune-config."),
) -> None:
    """Compile an ONNX model with TVM Relax, each tuned quantized product on Heron's kernel."""

    def run():
        from heron_core import build as b

        params = _pairs(target_param, "--target-param")
        onnx_model = b.load_onnx(model)  # a broken file is reported before anything else
        if tune_config is not None:
            products = b.find_products(onnx_model)
            for i, cfg in enumerate(b.tune_configs(products, trials, params)):
                path = tune_config if i == 0 else tune_config.with_name(f"{tune_config.name}.{i}")
                path.write_text(json.dumps(cfg, indent=1))
                out.print(f"{path}: {len(cfg['cases'])} workloads ({cfg['out_dtype']} outputs)")
            return
        rdb = _open_db(db)
        try:
            result = b.build_model(model, rdb, out_dir, target_params=params, log=out.print)
        finally:
            rdb.close()
        out.print(f"{len(result.heron)} products on Heron kernels, {len(result.untuned)} without records (TVM's own code)")
        out.print(f"load it with: heron_core.load_model({str(out_dir)!r})", highlight=False)
        if check:
            rows = b.compare_with_onnxruntime(model, b.load_model(out_dir))
            for r in rows:
                out.print(
                    f"check {r['output']}: max |diff| {r['max_abs']:.4g} (outputs up to {r['scale']:.4g}),"
                    f" relative L2 {r['rel_l2']:.3g} (ONNX Runtime optimized vs unoptimized: {r['ort_spread']:.3g})"
                )
            if not b.check_passes(rows):
                raise HeronError(
                    f"outputs differ from ONNX Runtime's by more than {b.CHECK_REL_L2:.0%}"
                    f" and {b.CHECK_SPREAD}x its own spread (relative L2)"
                )

    _guard(run)


@app.command()
def report(
    db: Optional[Path] = typer.Option(None, help="Records database. Default: the user data dir."),
    workload: Optional[str] = typer.Option(None, help="Only workloads whose key contains this."),
    target: Optional[str] = typer.Option(None, help="Only targets whose key contains this."),
    out_dir: Path = typer.Option(Path("."), "--out", help="Folder for the tuning-curve PNGs (and report.html)."),
    html: bool = typer.Option(False, "--html", help="Also write OUT/report.html: the tables and curves in one file."),
    network: Optional[str] = typer.Option(None, help="Per layer of this network: count, trials, best, vendor; a bar chart."),
    batch: Optional[int] = typer.Option(None, "--batch", help="The network's batch size, as tuned."),
    vendor: Optional[Path] = typer.Option(
        None, help="JSON {workload key or layer name: vendor seconds} (bench/network writes one)."
    ),
) -> None:
    """Per workload: best latency, GOPS, trials, failures, time spent, searchers; tuning curves as PNGs."""
    if network:
        _guard(lambda: _report_network(db, network, batch, target, vendor, out_dir, html))
        return

    def show():
        from heron_core import report as rep

        rdb = _open_db(db)
        try:
            reports = rep.collect(rdb, workload, target)
        finally:
            rdb.close()
        if not reports:
            which = " match --workload/--target" if workload or target else ""
            raise HeronError(f"no records in {rdb.path}{which}: nothing to report")
        for line in rep.terminal_lines(reports, out.width):
            out.print(Text(line), no_wrap=True, crop=False)
        plots = rep.write_plots(reports, out_dir)
        out.print(Text(f"tuning curves ({len(plots)} PNGs, one per workload) in {out_dir}"))
        if html:
            page = out_dir / "report.html"
            page.write_text(rep.render_html(reports, [p.read_bytes() for p in plots], f"Heron report: {rdb.path}"))
            out.print(f"report: {page}", highlight=False, soft_wrap=True)

    _guard(show)


def _network_items(source: str, batch: int | None, target: str | None):
    """A network's layers as tasks of the target named by ``target``'s first component (default dlboost)."""
    from heron_core.cli_network import resolve
    from heron_core.registry import registry
    from heron_core.task import PluginRef

    name = (target or "dlboost").split("/")[0]
    return resolve(source, registry(), batch, PluginRef(name=name))[1]


def _report_network(db, source, batch, target, vendor, out_dir: Path, html: bool) -> None:
    from heron_core import report as rep
    from heron_core.cli_network import resolve
    from heron_core.registry import registry
    from heron_core.task import PluginRef

    network, items = resolve(source, registry(), batch, PluginRef(name=(target or "dlboost").split("/")[0]))
    try:
        vendor_s = json.loads(vendor.read_text()) if vendor else None
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(f"--vendor {vendor}: {exc}") from None
    rdb = _open_db(db)
    try:
        target_key, rows = rep.network_layers(rdb, items, target, vendor_s)
    finally:
        rdb.close()
    table = Table(title=f"{network.name} on {target_key}")
    for h in rep.LAYER_HEADERS:
        table.add_column(h, overflow="fold", justify="left" if h in ("layer", "op") else "right")
    for cells in rep.layer_cells(rows):
        table.add_row(*map(escape, cells))
    out.print(table)
    t = rep.network_totals(rows)
    if t["latency_s"] is not None:
        line = (
            f"network latency {t['latency_s'] * 1e3:.4f} ms over {t['tuned_layers']}/{t['layers']} layers, {t['trials']} trials"
        )
        if t["vendor_s"]:
            line += f"; vendor {t['vendor_s'] * 1e3:.4f} ms on its layers ({t['vendor_s'] / t['heron_on_vendor_layers_s']:.2f}x)"
        out.print(line, highlight=False)
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = re.sub(r"[^\w.=,-]+", "_", network.name).strip("_")
    png = rep.network_chart(rows, out_dir / f"{stem}.png", f"{network.name} on {target_key}")
    out.print(f"chart: {png}", highlight=False, soft_wrap=True)
    if html:
        page = out_dir / f"{stem}.html"
        page.write_text(rep.render_network_html(f"{network.name} on {target_key}", rows, t, png.read_bytes()))
        out.print(f"report: {page}", highlight=False, soft_wrap=True)


@network_app.command("show")
def network_show(
    model: str = typer.Argument(..., help="An ONNX file, or a named network (resnet50, bert-base:seq=128, ...)."),
    target: str = typer.Option("dlboost", help="Target whose tunable layers to mark."),
    batch: Optional[int] = typer.Option(None, "--batch", help="Batch size (presets; free input dimensions of a model)."),
) -> None:
    """The layers Heron would tune (operator, shape, precision, count), those the target refuses and why,
    and every node that is not a layer, with its count."""

    def run():
        from heron_core.cli_network import resolve, show
        from heron_core.registry import registry
        from heron_core.task import PluginRef

        network, items = resolve(model, registry(), batch, PluginRef(name=target))
        show(out, network, items, target)

    _guard(run)


@records_app.command("export")
def records_export(
    file: str = typer.Argument(..., help="JSON Lines file to write, or - for stdout."),
    db: Optional[Path] = typer.Option(None, help="Records database. Default: the user data dir."),
    workload: Optional[str] = typer.Option(None, help="Only workloads whose key contains this."),
    target: Optional[str] = typer.Option(None, help="Only targets whose key contains this."),
) -> None:
    """Write records as JSON Lines: one record per line, each with "heron_records": 1 (the format version)."""

    def run():
        rdb = _open_db(db)
        try:
            if file == "-":
                n = rdb.export(sys.stdout, workload, target)
            else:
                try:
                    with open(file, "w", encoding="utf-8") as fh:
                        n = rdb.export(fh, workload, target)
                except OSError as exc:
                    raise HeronError(f"cannot write {file}: {exc.strerror}") from None
        finally:
            rdb.close()
        err.print(f"exported {n} records to {'stdout' if file == '-' else file}", highlight=False)

    _guard(run)


@records_app.command("import")
def records_import(
    file: str = typer.Argument(..., help="JSON Lines file from `heron records export`, or - for stdin."),
    db: Optional[Path] = typer.Option(None, help="Records database (created if missing). Default: the user data dir."),
) -> None:
    """Merge exported records; those already present (same workload, target and point) are skipped.
    A malformed line imports nothing."""

    def run():
        from heron_core.records import parse_export

        try:
            lines = sys.stdin.readlines() if file == "-" else Path(file).read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"cannot read {file}: {exc}") from None
        records = parse_export(lines, "stdin" if file == "-" else file)  # all checked before the database is touched
        rdb = _open_db(db, must_exist=False)
        try:
            imported, skipped = rdb.import_records(records)
        finally:
            rdb.close()
        out.print(f"imported {imported}, skipped {skipped} duplicates into {rdb.path}", highlight=False)

    _guard(run)


def _guard(fn) -> None:
    try:
        fn()
    except HeronError as exc:
        err.print(f"[red]error:[/red] {exc}", highlight=False)
        raise typer.Exit(exc.exit_code) from None
    except KeyboardInterrupt:
        err.print(INTERRUPTED, highlight=False, soft_wrap=True)
        raise typer.Exit(130) from None


def main() -> None:
    app()


if __name__ == "__main__":
    sys.exit(main())
