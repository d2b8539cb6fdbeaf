"""``heron``: tune operators, list plugins, show the best records."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from heron_core.errors import HeronError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    help="Heron: constrained auto-tuning of tensor operators.")
out = Console()
err = Console(stderr=True)


def default_db() -> Path:
    import platformdirs

    return Path(platformdirs.user_data_dir("heron")) / "records.db"


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


def parse_shape(text: str) -> dict[str, int] | list[int]:
    """``M=64,K=64,N=64`` (named) or ``64,64,64`` / ``64x64x64`` (the operator's order)."""
    from heron_core.errors import ConfigError

    parts = [p.strip() for p in text.replace("x", ",").split(",") if p.strip()]
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
    shape: Optional[str] = typer.Option(None, help="Shape: M=64,K=64,N=64 or 64,64,64 (operator order)."),
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
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress display."),
) -> None:
    """Tune operators on a target; every measurement is recorded, and a re-run resumes."""
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
    tasks = [Task(spec, reg) for spec in plan.tasks]  # every input checked before anything is written
    for task in tasks:
        task.target.check_host()
    db = RecordDB(cfg.db or default_db())
    progress = ProgressDisplay(a["quiet"])
    tuner = Tuner(plan, reg, db, progress.event)
    failed = False
    try:
        with progress:
            for spec, task in zip(plan.tasks, tasks):
                outcome = tuner.tune(spec)
                progress.finish()
                failed |= not _report(outcome)
    finally:
        tuner.close()
        db.close()
    err.print(f"[dim]records: {db.path}[/dim]")
    if failed:
        raise typer.Exit(1)


class ProgressDisplay:
    """Rich progress bar fed by the tuner's events."""

    def __init__(self, quiet: bool):
        self.quiet = quiet
        self.bar = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("best {task.fields[best]}  failed {task.fields[failed]}"),
            TimeRemainingColumn(),
            console=err,
            disable=quiet,
        )
        self.id = None
        self.best = float("inf")

    def __enter__(self):
        self.bar.__enter__()
        return self

    def __exit__(self, *exc):
        self.bar.__exit__(*exc)

    def event(self, kind: str, data: dict) -> None:
        if kind == "task":
            self.best, self.failed = float("inf"), 0
            self.id = self.bar.add_task(data["task"], total=data["total"], completed=data["done"], best="-", failed=0)
        elif kind == "result":
            r = data["result"]
            self.failed += not r.ok
            if r.ok:
                self.best = min(self.best, r.latency)
            best = f"{self.best * 1e3:.4f} ms" if self.best < float("inf") else "-"
            self.bar.update(self.id, completed=data["done"], best=best, failed=self.failed)

    def finish(self) -> None:
        if self.id is not None:
            self.bar.remove_task(self.id)
            self.id = None


def _report(outcome) -> bool:
    from heron_core.tuner import numpy_seconds

    task, best = outcome.task, outcome.best
    case = task.op.case()
    fails = ", ".join(f"{k} {v}" for k, v in sorted(outcome.failures.items()))
    stop = f"; searcher '{outcome.searcher}' found no new valid point" if outcome.exhausted else ""
    if best is None:
        out.print(f"FAIL / Case {case}: no correct kernel in {outcome.total} trials ({fails or 'no failures recorded'}{stop})")
        return False
    lat = best.latency_s
    gops = task.op.op_count() / lat / 1e9
    base = numpy_seconds(task)
    out.print(
        f"PASS / Case {case}, latency {lat * 1e3:.4f} ms, {gops:.1f} GOPS, "
        f"{base / lat:.1f}x numpy ({base * 1e3:.4f} ms)  "
        f"[{task.workload_key}, {outcome.total} trials, {outcome.measured_now} measured now"
        + (f", failures: {fails}" if fails else "")
        + stop
        + "]",
        highlight=False,
    )
    return True


@app.command()
def plugins() -> None:
    """Every registered implementation: kind, name, distribution, version."""

    def show():
        from heron_core.registry import registry

        reg = registry()
        table = Table("kind", "name", "distribution", "version", "description")
        for spec in reg.all_specs():
            table.add_row(spec.kind, spec.name, spec.distribution, spec.version, spec.description)
        out.print(table)
        for name, why in reg.broken.items():
            err.print(f"[red]plugin {name} failed to load: {why}[/red]")

    _guard(show)


@app.command()
def best(
    db: Optional[Path] = typer.Option(None, help="Records database. Default: the user data dir."),
    workload: Optional[str] = typer.Option(None, help="Only this workload key."),
) -> None:
    """The best record of every workload (and target) in the database."""

    def show():
        from heron_core.records import RecordDB

        path = db or default_db()
        if not path.exists():
            raise HeronError(f"no records database at {path}")
        rdb = RecordDB(path)
        counts = {(w, t): (n, ok) for w, t, n, ok in rdb.summary()}
        table = Table("workload", "target", "latency ms", "trials", "ok", "record", "point")
        for r in rdb.best(workload):
            n, ok = counts[(r.workload_key, r.target_key)]
            latency = f"{r.latency_s * 1e3:.4f}"
            table.add_row(r.workload_key, r.target_key, latency, str(n), str(ok), str(r.id), json.dumps(r.point))
        rdb.close()
        out.print(table)

    _guard(show)


def _guard(fn) -> None:
    try:
        fn()
    except HeronError as exc:
        err.print(f"[red]error:[/red] {exc}", highlight=False)
        raise typer.Exit(exc.exit_code) from None
    except KeyboardInterrupt:
        err.print("interrupted: every finished measurement is recorded; re-run the same command to resume")
        raise typer.Exit(130) from None


def main() -> None:
    app()


if __name__ == "__main__":
    sys.exit(main())
