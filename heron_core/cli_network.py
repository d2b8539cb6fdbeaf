"""The network side of ``heron``: ``network show``, ``tune --network``, ``report --network`` and
``export --network`` (cli.py parses the options and calls these)."""

from __future__ import annotations

import json
import sys

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from heron_core.network import Layer, Network, NetworkTask, load_network, network_tasks
from heron_core.registry import Registry
from heron_core.task import PluginRef

SHORT = {"stride": "s", "pad": "p", "dilation": "d", "output_pad": "op", "groups": "g", "batch": "b"}


def shape_text(layer: Layer) -> str:
    """``N1 C64 H56 W56 K64 R3 S3 s1 p1``: dilation and groups only when not 1."""
    return " ".join(
        f"{SHORT.get(k, k)}{v}"
        for k, v in layer.shape.items()
        if k != "channels_last" and not (k in ("dilation", "groups") and v == 1)
    )


def show(console: Console, network: Network, items: list[NetworkTask], target: str) -> None:
    """The layers (operator, shape, precision, count, whether ``target`` tunes them) and the unmapped nodes."""
    table = Table("layer", "op", "shape", "dtype", "n", target, title=f"{network.name}: {len(network.layers)} distinct layers")
    for item in items:
        layer = item.layer
        table.add_row(
            escape(layer.name), layer.op, shape_text(layer), layer.precision, str(layer.count), "yes" if item.task else "no"
        )
    console.print(table)
    for item in items:
        if item.task is None:
            console.print(f"not tunable on this target: {escape(item.layer.name)} ({escape(item.reason or '')})")
    total = sum(u.count for u in network.unmapped)
    if network.unmapped:
        rest = Table("op type", "count", "why not a layer", title=f"unmapped nodes: {total}")
        for u in sorted(network.unmapped, key=lambda u: -u.count):
            rest.add_row(u.op_type, str(u.count), escape(u.reason))
        console.print(rest)
    tunable = sum(i.layer.count for i in items if i.task)
    console.print(
        f"{sum(layer.count for layer in network.layers)} contraction nodes in {len(network.layers)} distinct layers "
        f"({tunable} nodes tunable on {target}); {total} other nodes",
        highlight=False,
    )


def resolve(source: str, reg: Registry, batch: int | None, target: PluginRef, dtypes=None) -> tuple[Network, list[NetworkTask]]:
    network = load_network(source, reg, {"batch": batch} if batch else None)
    return network, network_tasks(network, target, reg, dtypes)


class NetworkProgress:
    """One progress bar for the whole network: trials spent, tasks with a kernel, network latency."""

    def __init__(self, console: Console, quiet: bool):
        self.bar = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("tasks {task.fields[tuned]}  latency {task.fields[latency]}"),
            TimeElapsedColumn(),
            console=console,
            disable=quiet,
        )
        self.id = None

    def __enter__(self):
        self.bar.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self.bar.__exit__(*exc)

    @staticmethod
    def _fields(data: dict) -> dict:
        lat = data["latency_s"]
        return {"tuned": f"{data['tasks_tuned']}/{data['tasks']}", "latency": f"{lat * 1e3:.3f} ms" if lat else "-"}

    def event(self, kind: str, data: dict) -> None:
        if kind == "network_start":
            self.id = self.bar.add_task(data["network"], total=data["total"], completed=data["spent"], **self._fields(data))
        elif kind == "result" and self.id is not None:
            self.bar.advance(self.id)
        elif kind in ("network_round", "network_done") and self.id is not None:
            self.bar.update(self.id, completed=data["spent"], **self._fields(data))

    def stopping(self) -> None:
        if self.id is not None:
            self.bar.update(self.id, description="stopping after this batch (Ctrl-C again: at once)")


class NetworkJson:
    """``--json``: the scheduler's events (network_start, network_round, network_done), one JSON object per line."""

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        pass

    def stopping(self) -> None:
        pass

    def event(self, kind: str, data: dict) -> None:
        if kind.startswith("network_"):
            sys.stdout.write(json.dumps({"event": kind, **{k: v for k, v in data.items() if k != "outcome"}}) + "\n")
            sys.stdout.flush()


def print_outcome(console: Console, outcome, items: list[NetworkTask]) -> None:
    lat = outcome.latency_s
    s = outcome.seconds
    skipped = [i for i in items if i.task is None]
    console.print(
        f"network latency {lat * 1e3:.4f} ms (sum of count x best latency over {sum(st.best < 1e10 for st in outcome.states)}"
        f"/{len(outcome.states)} tuned tasks)"
        if lat
        else "network latency: no task has a correct kernel yet",
        highlight=False,
    )
    console.print(
        f"trials {outcome.spent} ({outcome.measured_now} now); time: search {s['search']:.1f} s, model {s['model']:.1f} s, "
        f"measure {s['measure']:.1f} s (build {s['build']:.1f} s, run {s['run']:.1f} s in workers)",
        highlight=False,
    )
    if skipped:
        console.print(f"skipped {len(skipped)} layers not tunable on this target (heron network show lists why)", highlight=False)
