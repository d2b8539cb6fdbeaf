"""``heron report``: per workload (workload key x target key) of a records database, the best
latency and GOPS, trials, failures by class, time spent and searchers, and the tuning curve
(best latency so far vs trial) as a PNG; optionally all of it in one self-contained HTML file."""

from __future__ import annotations

import base64
import hashlib
import html
import json
import math
import re
import textwrap
from collections import Counter
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from heron_core.errors import HeronError
from heron_core.records import RecordDB


@dataclass
class Curve:
    """One (run, searcher) of a workload: trial index (1-based, over the whole workload, by record
    id) and the workload's best latency so far in ms (None before the first success)."""

    label: str
    trials: list[int] = field(default_factory=list)
    best_ms: list[float | None] = field(default_factory=list)


@dataclass
class WorkloadReport:
    workload_key: str
    target_key: str
    trials: int = 0
    ok: int = 0
    failures: Counter = field(default_factory=Counter)  # status -> count, failures only
    best_latency_s: float | None = None
    best_record_id: int | None = None
    op_count: float | None = None  # None: the operator's plugin is not installed here
    measure_s: float = 0.0  # sum of build_s + run_s
    wall_s: float | None = None  # see RecordDB.wall_seconds; None when no record has a run
    searchers: list[str] = field(default_factory=list)
    curves: list[Curve] = field(default_factory=list)

    @property
    def gops(self) -> float | None:
        if self.op_count is None or not self.best_latency_s:
            return None
        return self.op_count / self.best_latency_s / 1e9

    @property
    def slug(self) -> str:
        """A file name stem safe on every common file system, derived from the keys."""
        raw = f"{self.workload_key}@{self.target_key}"
        name = re.sub(r"[^A-Za-z0-9._=,+@-]+", "_", raw).strip("._")
        if len(name) > 150:
            name = name[:140] + "-" + hashlib.sha1(raw.encode()).hexdigest()[:8]
        return name


@lru_cache(maxsize=None)
def _op_count(task_json: str) -> float | None:
    """The operator's op count, rebuilding the Task from a record's spec; None if that fails
    (e.g. the plugin that defined the operator or target is not installed)."""
    try:
        from heron_core.registry import registry
        from heron_core.task import Task, TaskSpec

        return float(Task(TaskSpec(**json.loads(task_json)), registry()).op.op_count())
    except Exception:
        return None


def collect(db: RecordDB, workload: str | None = None, target: str | None = None) -> list[WorkloadReport]:
    """The statistics of every workload whose keys contain ``workload`` / ``target``."""
    reports: dict[tuple[str, str], WorkloadReport] = {}
    curves: dict[tuple[str, str], dict[tuple[int | None, str], Curve]] = {}
    for row in db.rows(workload, target):
        key = (row["workload_key"], row["target_key"])
        if key not in reports:
            reports[key] = WorkloadReport(*key, op_count=_op_count(json.dumps(row["task"], sort_keys=True)))
            curves[key] = {}
        rep = reports[key]
        previous_best = rep.best_latency_s
        rep.trials += 1
        rep.measure_s += (row["build_s"] or 0.0) + (row["run_s"] or 0.0)
        if row["searcher"] not in rep.searchers:
            rep.searchers.append(row["searcher"])
        if row["status"] == "ok":
            rep.ok += 1
            if rep.best_latency_s is None or row["latency_s"] < rep.best_latency_s:
                rep.best_latency_s, rep.best_record_id = row["latency_s"], row["id"]
        else:
            rep.failures[row["status"]] += 1
        line = (row["run_id"], row["searcher"])
        curve = curves[key].get(line)
        if curve is None:
            label = f"run {row['run_id']}" if row["run_id"] is not None else "imported"
            curve = curves[key][line] = Curve(f"{label} ({row['searcher']})")
            if rep.trials > 1:  # start where the workload stood, so the lines join up
                curve.trials.append(rep.trials - 1)
                curve.best_ms.append(_ms(previous_best))
        curve.trials.append(rep.trials)
        curve.best_ms.append(_ms(rep.best_latency_s))
    walls = db.wall_seconds()
    for key, rep in reports.items():
        rep.wall_s = walls.get(key)
        rep.curves = list(curves[key].values())
    return list(reports.values())


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else seconds * 1e3


TITLE_CHARS = 80  # characters of a 9-point title line that fit the 7-inch figure

HEADERS = ["workload", "target", "best ms", "GOPS", "trials", "ok", "failures", "measure s", "wall s", "searchers"]
NUMERIC = {"best ms", "GOPS", "trials", "ok", "measure s", "wall s"}


def table_rows(reports: list[WorkloadReport]) -> list[list[str]]:
    """The cells of the summary table (columns: HEADERS); '-' where a value is unknown."""
    return [
        [
            r.workload_key,
            r.target_key,
            f"{r.best_latency_s * 1e3:.4f}" if r.best_latency_s is not None else "-",
            f"{r.gops:.1f}" if r.gops is not None else "-",
            str(r.trials),
            str(r.ok),
            " ".join(f"{k}={v}" for k, v in sorted(r.failures.items())) or "-",
            f"{r.measure_s:.1f}",
            f"{r.wall_s:.1f}" if r.wall_s is not None else "-",
            ", ".join(r.searchers),
        ]
        for r in reports
    ]


def terminal_lines(reports: list[WorkloadReport], width: int = 80) -> list[str]:
    """The summary for a terminal of ``width`` columns: per workload, its keys on one (wrapped) line
    and its figures on the next, under one header."""
    head = f"{'best ms':>10} {'GOPS':>8} {'ok/trials':>10} {'measure s':>10} {'wall s':>8}  "
    lines = [head + "failures; searchers"]
    for r, (wk, tk, ms, gops, trials, ok, fails, measure, wall, searchers) in zip(reports, table_rows(reports)):
        lines += textwrap.wrap(f"{wk} on {tk}", width, subsequent_indent="    ", break_on_hyphens=False)
        figures = f"{ms:>10} {gops:>8} {ok + '/' + trials:>10} {measure:>10} {wall:>8}  "
        rest = textwrap.wrap(f"{fails}; {searchers}", max(width - len(head), 12), break_on_hyphens=False)
        lines += [figures + rest[0], *(" " * len(head) + x for x in rest[1:])]
    return lines


def title_lines(text: str, width: int) -> str:
    """``text`` broken into lines of at most ``width`` characters, preferably after commas."""
    lines = [""]
    for part in re.findall(r"[^,]*,?", text):
        while part:
            room = width - len(lines[-1])
            if len(part) <= room:
                lines[-1] += part
                part = ""
            elif lines[-1]:
                lines.append("")
            else:  # a part longer than a line: cut it
                lines[-1], part = part[:width], part[width:]
                lines.append("")
    return "\n".join(line for line in lines if line)


def figure(report: WorkloadReport):
    """The tuning curve of one workload, as a matplotlib Figure (Agg)."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise HeronError("heron report draws with matplotlib: pip install matplotlib") from None

    fig = Figure(figsize=(7, 4), dpi=100)
    FigureCanvasAgg(fig)  # Agg, without pyplot's global state
    ax = fig.add_subplot()
    for curve in report.curves:
        ys = [math.nan if y is None else y for y in curve.best_ms]
        ax.step(curve.trials, ys, where="post", marker=".", markersize=3, label=curve.label)
    ax.set_xlabel("trial")
    ax.set_ylabel("best latency so far (ms)")
    known = [y for c in report.curves for y in c.best_ms if y]
    if known and max(known) > 10 * min(known):
        ax.set_yscale("log")
    if not known:
        ax.text(0.5, 0.5, "no successful measurement", transform=ax.transAxes, ha="center", va="center")
    ax.grid(alpha=0.3)
    if report.curves:
        ax.legend(fontsize=8)
    # keys can be longer than the figure is wide: wrapped after commas, centred on the figure, and
    # smaller if a line still does not fit; tight_layout then makes room for the lines
    text = title_lines(report.workload_key, TITLE_CHARS) + "\non " + title_lines(report.target_key, TITLE_CHARS)
    title = fig.suptitle(text, fontsize=9)
    width = title.get_window_extent(fig.canvas.get_renderer()).width
    if width > 0.96 * fig.bbox.width:
        title.set_fontsize(9 * 0.96 * fig.bbox.width / width)
    fig.tight_layout()
    return fig


def plot(report: WorkloadReport, path: Path) -> Path:
    """Write the tuning curve of one workload as a PNG."""
    figure(report).savefig(path, format="png")
    return path


def write_plots(reports: list[WorkloadReport], out_dir: Path) -> list[Path]:
    """One PNG per workload in ``out_dir``; file names from the workload keys."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths: list[Path] = []
    for rep in reports:
        stem, n = rep.slug, 1
        while out_dir / f"{stem}.png" in paths:  # two keys that differ only in unsafe characters
            n += 1
            stem = f"{rep.slug}-{n}"
        paths.append(plot(rep, out_dir / f"{stem}.png"))
    return paths


_STYLE = """body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}
th,td{border:1px solid #ccc;padding:4px 8px;text-align:left;font-size:13px}th{background:#f0f0f0}
td.num{text-align:right}h2{font-size:15px;margin-top:2em}"""


def render_html(reports: list[WorkloadReport], images: list[bytes], title: str = "Heron report") -> str:
    """One self-contained HTML page: the summary table, then each workload's curve (``images``, PNG
    bytes in the order of ``reports``) embedded as a data URI."""
    head = "".join(f"<th>{html.escape(h)}</th>" for h in HEADERS)
    body = "".join(
        "<tr>"
        + "".join(f"<td{' class=num' if h in NUMERIC else ''}>{html.escape(cell)}</td>" for h, cell in zip(HEADERS, cells))
        + "</tr>"
        for cells in table_rows(reports)
    )
    figures = "".join(
        f"<h2>{html.escape(r.workload_key)} on {html.escape(r.target_key)}</h2>"
        f'<img alt="tuning curve" src="data:image/png;base64,{base64.b64encode(png).decode()}">'
        for r, png in zip(reports, images)
    )
    return (
        f'<!DOCTYPE html><html><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f"<style>{_STYLE}</style></head><body><h1>{html.escape(title)}</h1>"
        f"<table><tr>{head}</tr>{body}</table>{figures}</body></html>\n"
    )


# --- networks (``heron report --network``) ------------------------------------------------


@dataclass
class LayerReport:
    """One layer of a network on one target: its count, trials (the scheduler's allocation), best
    latency, and the vendor's latency where one is given."""

    name: str
    op: str
    count: int
    workload_key: str | None
    reason: str | None = None  # why the target cannot tune it
    trials: int = 0
    best_latency_s: float | None = None
    op_count: float | None = None
    vendor_s: float | None = None
    peak_gops: float | None = None  # the target's on this machine (Target.peak_gops)

    @property
    def gops(self) -> float | None:
        return self.op_count / self.best_latency_s / 1e9 if self.op_count and self.best_latency_s else None

    @property
    def pct_of_peak(self) -> float | None:
        return 100 * self.gops / self.peak_gops if self.gops and self.peak_gops else None

    @property
    def speedup(self) -> float | None:
        return self.vendor_s / self.best_latency_s if self.vendor_s and self.best_latency_s else None


def choose_target_key(db: RecordDB, workload_keys: set[str], target: str | None) -> str:
    """The target key (containing ``target``) holding the most records of these workloads."""
    counts: Counter = Counter()
    for wk, tk, n, _ in db.summary():
        if wk in workload_keys and (not target or target in tk):
            counts[tk] += n
    if not counts:
        raise HeronError(
            f"no records of this network's layers in {db.path}" + (f" on a target matching '{target}'" if target else "")
        )
    return counts.most_common(1)[0][0]


def network_layers(
    db: RecordDB, items, target: str | None, vendor: dict[str, float] | None = None
) -> tuple[str, list[LayerReport]]:
    """``items``: the network's :class:`~heron_core.network.NetworkTask`s. Returns the target key
    and one row per layer; ``vendor`` maps workload keys (or layer names) to the vendor's seconds."""
    keys = {i.workload_key for i in items if i.task}
    target_key = choose_target_key(db, keys, target)
    summary = {wk: n for wk, tk, n, _ in db.summary() if tk == target_key}
    best = {r.workload_key: r for r in db.best() if r.target_key == target_key}
    peak = target_peak(next(iter(best.values())).task, target_key) if best else None
    vendor = vendor or {}
    rows = []
    for item in items:
        layer, wk = item.layer, item.workload_key
        rows.append(
            LayerReport(
                layer.name,
                layer.op,
                layer.count,
                wk,
                item.reason,
                summary.get(wk, 0),
                best[wk].latency_s if wk in best else None,
                float(item.task.op.op_count()) if item.task else None,
                vendor.get(wk or "", vendor.get(layer.name)),
                peak,
            )
        )
    return target_key, rows


def target_peak(task: dict, target_key: str) -> float | None:
    """The peak GOPS of the target a record's ``task`` ran on, if that target is this machine's
    (its key is ``target_key``) and knows its peak; None otherwise."""
    try:
        from heron_core.registry import registry
        from heron_core.task import Task, TaskSpec

        target = Task(TaskSpec(**task), registry()).target
        return target.peak_gops() if target.key() == target_key else None
    except Exception:  # the plugin is not installed here, the host cannot run the target, ...
        return None


def network_totals(rows: list[LayerReport]) -> dict[str, float | int | None]:
    """Network latency (sum count x best) over tuned layers; the vendor's over the same layers."""
    tuned = [r for r in rows if r.best_latency_s is not None]
    both = [r for r in tuned if r.vendor_s is not None]
    heron = sum(r.count * r.best_latency_s for r in tuned) if tuned else None
    return {
        "latency_s": heron,
        "tuned_layers": len(tuned),
        "layers": len(rows),
        "trials": sum(r.trials for r in rows),
        "vendor_s": sum(r.count * r.vendor_s for r in both) if both else None,
        "heron_on_vendor_layers_s": sum(r.count * r.best_latency_s for r in both) if both else None,
    }


LAYER_HEADERS = ["layer", "op", "n", "trials", "best ms", "GOPS", "% peak", "vendor ms", "speedup"]


def layer_cells(rows: list[LayerReport]) -> list[list[str]]:
    def ms(s):
        return f"{s * 1e3:.4f}" if s is not None else "-"

    return [
        [
            r.name,
            r.op,
            str(r.count),
            str(r.trials) if r.reason is None else "not tunable",
            ms(r.best_latency_s),
            f"{r.gops:.1f}" if r.gops else "-",
            f"{r.pct_of_peak:.0f}%" if r.pct_of_peak else "-",
            ms(r.vendor_s),
            f"{r.speedup:.2f}x" if r.speedup else "-",
        ]
        for r in rows
    ]


def network_chart(rows: list[LayerReport], path: Path, title: str) -> Path:
    """Figure-10 style: per layer, count x latency (ms) of Heron and of the vendor, side by side."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    shown = [r for r in rows if r.best_latency_s is not None or r.vendor_s is not None]
    fig = Figure(figsize=(max(6, 0.35 * len(shown) + 2), 4), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    xs = range(len(shown))
    heron = [r.count * r.best_latency_s * 1e3 if r.best_latency_s else 0 for r in shown]
    vendor = [r.count * r.vendor_s * 1e3 if r.vendor_s else 0 for r in shown]
    width = 0.4 if any(vendor) else 0.8
    ax.bar([x - (width / 2 if any(vendor) else 0) for x in xs], heron, width, label="Heron")
    if any(vendor):
        ax.bar([x + width / 2 for x in xs], vendor, width, label="vendor")
    ax.set_xticks(list(xs), [r.name for r in shown], rotation=90, fontsize=7)
    ax.set_ylabel("count x latency (ms)")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, format="png")
    return path


def render_network_html(title: str, rows: list[LayerReport], totals: dict, png: bytes) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in LAYER_HEADERS)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in cells) + "</tr>" for cells in layer_cells(rows))
    summary = html.escape(json.dumps(totals))
    return (
        f'<!DOCTYPE html><html><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f"<style>{_STYLE}</style></head><body><h1>{html.escape(title)}</h1><p>{summary}</p>"
        f'<table><tr>{head}</tr>{body}</table><img alt="per-layer latency" '
        f'src="data:image/png;base64,{base64.b64encode(png).decode()}"></body></html>\n'
    )
