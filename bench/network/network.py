"""Network benchmark: tune every layer of a network under one trial budget with the task scheduler,
then compare the network latency (sum of count x best latency) with the sum of the best VNNI vendor
path per layer (bench/vendor.py, AMX denied by bench/vnni_only.py on AMX machines).

    python bench/network/network.py models --out bench/network/models        # ONNX files, fp32 + int8 QDQ
    flock /tmp/heron-bench.lock taskset -c 1 python bench/network/network.py run resnet50:batch=1 \\
        --per-task 30 --cores 1 --strategies round_robin,gradient --gradient-share 0.6

``run`` is resumable: every measurement is in a records database per (network, strategy) under
bench/network/work/, and the vendor timings in a JSON cache there; re-running the same command
continues, and ``--minutes M`` stops after the batch once M minutes have passed (hold the benchmark
lock in pieces). ``--retime N`` (default 3) times each strategy's best kernel per layer again, the
strategies alternating in one process, for a comparison that does not depend on the load each tuning
run saw. ``--layers K`` tunes only the K heaviest tunable layers (by count x op count) when the
whole network does not fit the time at hand. Results: bench/results/network_<cpu>_<n>c.{json,md}.
``models`` needs the ``models`` extra (torch==2.13.0, transformers, onnxruntime).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent.parent
ROOT = BENCH.parent
WORK = Path(__file__).resolve().parent / "work"
sys.path.insert(0, str(BENCH))


# ------------------------------------------------------------------------------------- models
def resnet50(torch):
    nn = torch.nn

    class Bottleneck(nn.Module):
        def __init__(self, cin, width, stride):
            super().__init__()
            cout = width * 4
            self.body = nn.Sequential(
                nn.Conv2d(cin, width, 1, bias=False),
                nn.BatchNorm2d(width),
                nn.ReLU(),
                nn.Conv2d(width, width, 3, stride, 1, bias=False),
                nn.BatchNorm2d(width),
                nn.ReLU(),
                nn.Conv2d(width, cout, 1, bias=False),
                nn.BatchNorm2d(cout),
            )
            self.skip = (
                nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
                if stride != 1 or cin != cout
                else nn.Identity()
            )

        def forward(self, x):
            return torch.relu(self.body(x) + self.skip(x))

    layers, cin = [], 64
    for width, blocks, stride in ((64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2)):
        for b in range(blocks):
            layers.append(Bottleneck(cin, width, stride if b == 0 else 1))
            cin = width * 4
    return nn.Sequential(
        nn.Conv2d(3, 64, 7, 2, 3, bias=False),
        nn.BatchNorm2d(64),
        nn.ReLU(),
        nn.MaxPool2d(3, 2, 1),
        *layers,
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(2048, 1000),
    )


def mobilenet_v2(torch):
    nn = torch.nn

    def cbr(cin, cout, k=3, s=1, g=1):
        return [nn.Conv2d(cin, cout, k, s, k // 2, groups=g, bias=False), nn.BatchNorm2d(cout), nn.ReLU6()]

    class Inverted(nn.Module):
        def __init__(self, cin, cout, stride, t):
            super().__init__()
            hid = cin * t
            body = (cbr(cin, hid, 1) if t != 1 else []) + cbr(hid, hid, 3, stride, hid)
            self.body = nn.Sequential(*body, nn.Conv2d(hid, cout, 1, bias=False), nn.BatchNorm2d(cout))
            self.res = stride == 1 and cin == cout

        def forward(self, x):
            return x + self.body(x) if self.res else self.body(x)

    layers, cin = cbr(3, 32, 3, 2), 32
    for t, c, n, s in ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)):
        for i in range(n):
            layers.append(Inverted(cin, c, s if i == 0 else 1, t))
            cin = c
    layers += cbr(cin, 1280, 1)
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(1280, 1000))


def build_models(out: Path, seq: int) -> None:
    import numpy as np
    import torch
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from transformers import BertConfig, BertModel

    class Encoder(torch.nn.Module):  # transformers' forward takes many optional arguments; export two
        def __init__(self, bert):
            super().__init__()
            self.bert = bert

        def forward(self, input_ids, attention_mask):
            return self.bert(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state

    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    specs = {
        "resnet50": (resnet50(torch), {"x": torch.randn(1, 3, 224, 224)}),
        "mobilenetv2": (mobilenet_v2(torch), {"x": torch.randn(1, 3, 224, 224)}),
        "bert-base": (
            Encoder(BertModel(BertConfig())),
            {"input_ids": torch.randint(0, 30000, (1, seq)), "attention_mask": torch.ones(1, seq, dtype=torch.int64)},
        ),
    }
    for name, (model, inputs) in specs.items():
        model.eval()
        path = out / f"{name}.onnx"
        if (out / f"{name}_int8.onnx").exists():
            continue
        torch.onnx.export(model, tuple(inputs.values()), str(path), input_names=list(inputs), opset_version=17, dynamo=False)
        rng = np.random.default_rng(0)

        class Random(CalibrationDataReader):
            def __init__(self):
                self.left = 4

            def get_next(self):
                if not self.left:
                    return None
                self.left -= 1
                return {
                    k: (rng.standard_normal(v.shape).astype(np.float32) if v.dtype == torch.float32 else v.numpy())
                    for k, v in inputs.items()
                }

        quantize_static(
            str(path),
            str(out / f"{name}_int8.onnx"),
            Random(),
            quant_format=QuantFormat.QDQ,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
        )
        print(f"wrote {path} and {name}_int8.onnx", flush=True)


# ---------------------------------------------------------------------------------------- run
def load_items(network: str, cores: int, microkernel: str):
    from heron_core.network import load_network, network_tasks
    from heron_core.registry import registry
    from heron_core.task import PluginRef

    net = load_network(network, registry())
    target = PluginRef(name="dlboost", params={"num_cores": cores, "microkernel": microkernel})
    return net, network_tasks(net, target, registry()), target


def heaviest(items, k: int | None):
    tunable = [i for i in items if i.task]
    if not k:
        return tunable
    return sorted(tunable, key=lambda i: -i.layer.count * i.task.op.op_count())[:k]


def tune(
    network, net, items, strategy: str, trials: int, cores: int, microkernel: str, search: str, model: str, batch: int,
    deadline: float = float("inf"),
) -> dict:
    from heron_core.config import build_config, plan
    from heron_core.records import RecordDB
    from heron_core.registry import registry
    from heron_core.scheduler import SchedulerParams, TaskScheduler
    from heron_core.tuner import Tuner

    slug = network.replace(":", "_").replace("=", "").replace(",", "_").replace("/", "_")
    db_path = WORK / f"{slug}_{strategy}.db"
    cfg = build_config(
        {
            "target": {"name": "dlboost", "num_cores": cores, "microkernel": microkernel},
            "trials": trials,
            "batch_size": batch,
            "search": search,
            "model": model,
            "db": str(db_path),
        }
    )
    p = plan(cfg, registry())
    db = RecordDB(db_path)
    tuner = Tuner(p, registry(), db, stop=lambda: time.time() > deadline)
    t0 = time.time()
    last = [t0]

    def progress(kind, data):
        if kind == "network_round" and time.time() - last[0] > 30:
            last[0] = time.time()
            lat = data["latency_s"]
            print(
                f"  {strategy}: {data['spent']}/{data['total']} trials, {data['tasks_tuned']}/{data['tasks']} tasks, "
                f"latency {lat * 1e3 if lat else float('nan'):.3f} ms",
                flush=True,
            )

    try:
        outcome = TaskScheduler(tuner, net, items, trials, SchedulerParams(strategy=strategy), progress).run()
    finally:
        tuner.close()
        db.close()
    clock_path = db_path.with_suffix(".time.json")  # time accumulated over resumed runs
    clock = json.loads(clock_path.read_text()) if clock_path.exists() else {"wall_s": 0.0, "seconds": {}}
    clock["wall_s"] += time.time() - t0
    for k, v in outcome.seconds.items():
        clock["seconds"][k] = clock["seconds"].get(k, 0.0) + v
    clock_path.write_text(json.dumps(clock))
    return {
        "strategy": strategy,
        "trials": outcome.spent,
        "measured_now": outcome.measured_now,
        "complete": all(s.best < 1e10 for s in outcome.states),
        "interrupted": outcome.interrupted,
        "wall_s": clock["wall_s"],
        "seconds": clock["seconds"],
        "latency_s": outcome.latency_s,
        "layers": {
            s.item.layer.name: {
                "workload_key": s.item.workload_key,
                "count": s.weight,
                "op_count": s.op_count,
                "trials": s.trials,
                "best_s": s.best if s.best < 1e10 else None,
            }
            for s in outcome.states
        },
        "db": str(db_path.relative_to(ROOT)),
    }


def retime(items, runs: dict, cores: int, microkernel: str, rounds: int) -> None:
    """Each strategy's best kernel per layer timed again, the strategies alternating in one process
    (``rounds`` rounds, the order reversed every other round), so that the comparison does not
    depend on the load each tuning run happened to see; adds ``retimed_s`` (the median) per layer
    and ``retimed_latency_s`` per run."""
    import statistics

    from heron_core.config import build_config, plan
    from heron_core.records import RecordDB
    from heron_core.registry import registry
    from heron_core.tuner import Tuner

    best = {}
    for strategy, run_ in runs.items():
        db = RecordDB(ROOT / run_["db"])
        try:
            best[strategy] = {i.workload_key: db.best(i.workload_key) for i in items}
        finally:
            db.close()
    cfg = build_config({"target": {"name": "dlboost", "num_cores": cores, "microkernel": microkernel}, "db": str(WORK / "retime.db")})
    db = RecordDB(WORK / "retime.db")
    tuner = Tuner(plan(cfg, registry()), registry(), db)
    try:
        for item in items:
            task, times = item.task, {s: [] for s in runs}
            for r in range(rounds):
                for strategy in list(runs)[:: 1 if r % 2 == 0 else -1]:
                    rec = [x for x in best[strategy][item.workload_key] if x.target_key == task.target_key]
                    if rec:
                        times[strategy] += [m.latency for m in tuner.runner.run(task, [rec[0].point]) if m.ok]
            for strategy, run_ in runs.items():
                run_["layers"][item.layer.name]["retimed_s"] = statistics.median(times[strategy]) if times[strategy] else None
    finally:
        tuner.close()
        db.close()
    for run_ in runs.values():
        lay = run_["layers"].values()
        run_["retimed_latency_s"] = sum(x["count"] * x["retimed_s"] for x in lay) if all(x.get("retimed_s") for x in lay) else None


def vendor_times(items, cores: int, isa: str) -> dict:
    from vendor import measure_vendor

    cache_path = WORK / f"vendor_{isa}_{cores}c.json"
    cache = json.loads(cache_path.read_text()) if cache_path.exists() else {}
    for item in items:
        key = item.workload_key
        if key in cache:
            continue
        got = measure_vendor(item.layer.op, item.task.op.shape.as_ints(), threads=cores, isa=isa, timeout=600)
        best = got.get("best")
        cache[key] = {"best": best["path"] if best else None, "s": best["ms"] / 1e3 if best else None, "error": got.get("error")}
        cache_path.write_text(json.dumps(cache, indent=1))
        print(f"  vendor {key}: {best} {cache[key]['s']}", flush=True)
    return {i.workload_key: cache[i.workload_key] for i in items}


def run(args) -> None:
    from heron_cpu_dlboost.peak import measure_peak
    from vendor import cpu_info

    import heron_core.tvm_compat as tc

    WORK.mkdir(parents=True, exist_ok=True)
    net, items, target = load_items(args.network, args.cores, args.microkernel)
    chosen = heaviest(items, args.layers)
    refused = [{"layer": i.layer.name, "count": i.layer.count, "reason": i.reason} for i in items if not i.task]
    full = args.per_task * len(chosen)
    deadline = time.time() + 60 * args.minutes if args.minutes else float("inf")
    runs = {}
    for strategy in args.strategies.split(","):
        budget = full if strategy == "round_robin" else int(round(full * args.gradient_share))
        print(f"{args.network}: {strategy}, {budget} trials over {len(chosen)} tasks", flush=True)
        runs[strategy] = tune(
            args.network, net, chosen, strategy, budget, args.cores, args.microkernel, args.search, args.model, args.batch_size,
            deadline,
        )
        if runs[strategy]["interrupted"]:
            print(f"stopped after --minutes {args.minutes} at {runs[strategy]['trials']}/{budget} trials: the same command resumes")
            return
    if args.retime:
        retime(chosen, runs, args.cores, args.microkernel, args.retime)
    cpu = cpu_info()
    isa = "vnni" if cpu["amx_present"] else "native"
    vendor = vendor_times(chosen, args.cores, isa) if not args.no_vendor else {}
    peak = max(measure_peak(args.cores) for _ in range(3))  # the best of 3: a busy neighbour only lowers it
    result = {
        "network": args.network,
        "machine": {**cpu, "platform": platform.platform(), "python": platform.python_version()},
        "versions": tc.versions(),
        "pinned": f"taskset -c 1, kernels on {args.cores} core(s), other work on the other core",
        "target": target.model_dump(),
        "search": args.search,
        "model": args.model,
        "per_task": args.per_task,
        "batch_size": args.batch_size,
        "retime": args.retime,
        "tasks_tuned": [i.layer.name for i in chosen],
        "tasks_not_tuned": [i.layer.name for i in items if i.task and i not in chosen],
        "not_tunable": refused,
        "vnni_peak_gops": peak,
        "vendor_isa": isa,
        "vendor": vendor,
        "runs": runs,
    }
    stem = f"network_{Path(args.network.split(':')[0]).stem}_{args.cores}c"
    out = BENCH / "results" / "network" / f"{stem}.json"
    out.write_text(json.dumps(result, indent=1))
    charts(stem, args.network, chosen, runs, {k: v["s"] for k, v in vendor.items() if v.get("s")})
    (BENCH / "results" / "network" / f"{stem}.md").write_text(markdown(result))
    print(markdown(result))


def charts(stem: str, network: str, items, runs: dict, vendor_s: dict) -> None:
    """The figure-10 style chart of each run (heron report --network's), and the vendor timings as
    ``heron report --network ... --vendor`` takes them."""
    from heron_core import report as rep
    from heron_core.records import RecordDB

    (BENCH / "results" / "network" / f"{stem}_vendor.json").write_text(json.dumps(vendor_s, indent=1))
    for strategy, run_ in runs.items():
        db = RecordDB(ROOT / run_["db"])
        try:
            target_key, rows = rep.network_layers(db, items, None, vendor_s)
        finally:
            db.close()
        rep.network_chart(rows, BENCH / "results" / "network" / f"{stem}_{strategy}.png", f"{network} ({strategy}) on {target_key}")


def markdown(r: dict) -> str:
    lines = [
        f"# Network benchmark: {r['network']} on dlboost ({r['machine']['cpu']})",
        "",
        f"{r['pinned']}; search {r['search']}, model {r['model']}, {r['per_task']} trials per task "
        f"for round-robin, rounds of {r['batch_size']}; vendor: best int8 path per layer ({r['vendor_isa']}), bench/vendor.py; "
        f"% peak: of the VNNI peak measured in the same run ({r['vnni_peak_gops'] or float('nan'):.0f} GOPS, "
        "heron_cpu_dlboost/peak.py).",
        "",
    ]
    if r["not_tunable"]:
        lines.append(
            "Not tunable on this target today (skipped): "
            + "; ".join(f"{x['layer']} x{x['count']} ({x['reason']})" for x in r["not_tunable"])
        )
        lines.append("")
    if r["tasks_not_tuned"]:
        lines.append(f"Left out of this run (budget): {', '.join(r['tasks_not_tuned'])}")
        lines.append("")
    vendor, peak = r["vendor"], r["vnni_peak_gops"]
    first = next(iter(r["runs"].values()))["layers"]
    head = "| layer | count | " + " | ".join(f"{s} trials | {s} ms | {s} % peak" for s in r["runs"]) + " | vendor ms | vendor path |"
    lines += [head, "|" + "---|" * (head.count("|") - 1)]
    for name, layer in first.items():
        row = [name, str(layer["count"])]
        for run_ in r["runs"].values():
            lay = run_["layers"][name]
            best = lay["best_s"]
            pct = f"{100 * lay['op_count'] / best / 1e9 / peak:.0f}%" if best and peak else "-"
            row += [str(lay["trials"]), f"{best * 1e3:.4f}" if best else "-", pct]
        v = vendor.get(layer["workload_key"], {})
        row += [f"{v['s'] * 1e3:.4f}" if v.get("s") else "-", str(v.get("best") or "-")]
        lines.append("| " + " | ".join(row) + " |")
    lines += [
        "",
        "| strategy | trials | per task | network ms | vendor sum ms | speedup | tuning wall s | search s | model s "
        "| measure s | build s (workers) | run s (workers) |",
        "|---|" + "---:|" * 11,
    ]
    for s, run_ in r["runs"].items():
        both = [(x, vendor.get(x["workload_key"], {}).get("s")) for x in run_["layers"].values()]
        both = [(x, v) for x, v in both if v and x["best_s"]]
        heron = sum(x["count"] * x["best_s"] for x, _ in both)
        vend = sum(x["count"] * v for x, v in both)
        secs = run_["seconds"]
        lines.append(
            f"| {s} | {run_['trials']} | {run_['trials'] / max(len(first), 1):.1f} | {(run_['latency_s'] or 0) * 1e3:.3f}"
            f"{'' if run_['complete'] else ' (NOT every layer has a kernel)'} | "
            + (f"{vend * 1e3:.3f} ({len(both)} layers) | {vend / heron:.2f}x" if both else "- | -")
            + f" | {run_['wall_s']:.0f} | "
            + " | ".join(f"{secs.get(k, 0):.0f}" for k in ("search", "model", "measure", "build", "run"))
            + " |"
        )
    lines.append("")
    if {"gradient", "round_robin"} <= set(r["runs"]):
        g, rr = r["runs"]["gradient"], r["runs"]["round_robin"]
        if g["complete"] and rr["complete"]:
            lines.append(
                f"- gradient / round-robin network latency: {g['latency_s'] / rr['latency_s']:.3f} with "
                f"{g['trials'] / rr['trials']:.0%} of the trials (target: <= 1.05 with <= 60%), as tuned"
            )
        if g.get("retimed_latency_s") and rr.get("retimed_latency_s"):
            lines.append(
                f"- the same, both strategies' best kernels re-timed side by side ({r['retime']} alternating rounds, "
                f"medians): {g['retimed_latency_s'] * 1e3:.3f} / {rr['retimed_latency_s'] * 1e3:.3f} ms = "
                f"{g['retimed_latency_s'] / rr['retimed_latency_s']:.3f}"
            )
    lines.append("")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("models", help="build ResNet-50, MobileNetV2 and BERT-base ONNX files (fp32 and int8 QDQ)")
    m.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "models")
    m.add_argument("--seq", type=int, default=128)
    r = sub.add_parser("run", help="tune a network with each strategy, time the vendor per layer, write results")
    r.add_argument("network", help="a preset (resnet50:batch=1, bert-base:batch=1,seq=128) or an ONNX file")
    r.add_argument("--per-task", type=int, default=30)
    r.add_argument("--cores", type=int, default=1)
    r.add_argument("--batch-size", type=int, default=8, help="trials per scheduler round")
    r.add_argument("--layers", type=int, default=None, help="only the K heaviest tunable layers")
    r.add_argument("--strategies", default="round_robin,gradient")
    r.add_argument("--gradient-share", type=float, default=0.6, help="gradient's budget as a share of round-robin's")
    r.add_argument("--search", default="cga")
    r.add_argument("--model", default="gbdt")
    r.add_argument("--microkernel", default="vnni")
    r.add_argument("--no-vendor", action="store_true")
    r.add_argument("--retime", type=int, default=3, help="rounds of timing each strategy's best kernels side by side")
    r.add_argument("--minutes", type=float, default=None, help="stop after the batch once this long has passed (resumable)")
    args = ap.parse_args()
    if args.cmd == "models":
        build_models(args.out, args.seq)
    else:
        run(args)


if __name__ == "__main__":
    main()
