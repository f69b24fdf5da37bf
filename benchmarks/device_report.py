"""The device check's one summary table, from what its parts left in OUT.

    python benchmarks/device_report.py OUT

Reads ``OUT/allocation.json`` (part 1, ``device_allocation.py``), ``OUT/overhead.csv`` (part 2,
``overhead.py --csv``), ``OUT/workers.json`` and ``OUT/repeat.json`` (parts 3 and 4,
``device_grids.py``), prints one Markdown table (part, what, measured, goal, verdict) and writes
it to ``OUT/summary.md``. A part that left nothing is a row saying so, with its log's name.
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

Row = tuple[str, str, str, str, str]


def _load(path: Path):
    if not path.exists() or path.stat().st_size == 0:
        return None
    if path.suffix == ".csv":
        with path.open() as handle:
            return list(csv.DictReader(handle))
    return json.loads(path.read_text())


def allocation(rows: list[dict]) -> list[Row]:
    out = []
    for r in rows:
        steps = f" ({r['steps']['steps']} steps)" if r.get("steps") else ""
        what = f"{r['method']}{steps} on {r['arch']}, {r['device']}"
        if "failure" in r:
            out.append(("1 allocation", what, f"failed: {r['failure']}", "", "failed"))
            continue
        measured = f"{r['seconds']:.3f} s, {r['peak_mb']:.0f} MB peak"
        if r.get("cpu_agreement") is not None:
            measured += f", {100 * r['cpu_agreement']:.3f}% of mask = CPU's"
        goal, verdict = "", ""
        if r.get("cpu_seconds"):
            measured += f"; {r['ratio']:.3f}x of CPU {r['cpu_seconds']:.2f} s"
        if r.get("goal") is not None:
            goal = f"< 1/{round(1 / r['goal'])} of CPU time"
            verdict = r["verdict"].split(": ", 1)[-1]
        out.append(("1 allocation", what, measured, goal, verdict))
    return out


def overhead(rows: list[dict]) -> list[Row]:
    out = []
    for r in rows:
        ratio = float(r["ratio"])
        what = f"{r['arch']} b{r['batch']}, {r['precision']}, {r['layout']}, {r['device']}"
        measured = (f"bench {float(r['harness_s']) * 1e3:.2f} ms, bare "
                    f"{float(r['bare_s']) * 1e3:.2f} ms: {ratio:.3f}x")
        goal = f"<= {float(r['goal']):.2f}x" if r.get("goal") else ""
        verdict = ("met" if ratio <= float(r["goal"]) else "missed") if goal else ""
        out.append(("2 step time", what, measured, goal, verdict))
    return out


def workers(rows: list[dict]) -> list[Row]:
    out = []
    base = next((r.get("per_hour") for r in rows if r["workers"] == 1), None)
    for r in rows:
        what = f"LeNet-5 grid, {r['workers']} worker(s)"
        if not r.get("per_hour"):
            out.append(("3 workers", what, f"exit {r['exit']}, {r['finished']}/{r['runs']} runs "
                        "finished", "", "failed"))
            continue
        measured = (f"{r['finished']} runs, {r['per_hour']:.0f} runs/h "
                    f"({r['per_hour_wall']:.0f}/h with start-up)")
        goal, verdict = "", ""
        if base and r["workers"] != 1:
            speedup = r["per_hour"] / base
            measured += f", {speedup:.2f}x of 1"
            if r["workers"] == 4:
                goal, verdict = ">= 3x of 1 worker", "met" if speedup >= 3 else "missed"
        out.append(("3 workers", what, measured, goal, verdict))
    return out


def repeat(rows: list[dict]) -> list[Row]:
    out = []
    for r in rows:
        if "layers_equal" in r:
            out.append(("4 repeat", "bench query layers, run A vs run B",
                        f"{r['layer_rows']} layer rows, " + ("equal" if r["layers_equal"]
                                                             else "DIFFERENT"),
                        "equal", "met" if r["layers_equal"] else "missed"))
            continue
        status = f"{r['status_a']}/{r['status_b']}"
        measured = f"{status}, masks {'equal' if r['masks_equal'] else 'DIFFERENT'}"
        if r.get("reason"):
            measured += f" ({r['reason'][:60]})"
        if r.get("acc_a") is not None and r.get("acc_b") is not None:
            measured += f", test acc {100 * r['acc_a']:.2f}/{100 * r['acc_b']:.2f}%"
        measured += f", weights {'equal' if r['weights_equal'] else 'differ'}"
        if r.get("nondeterministic_ops"):
            measured += f", nondeterministic: {r['nondeterministic_ops']}"
        ok = r["as_expected"] and r["masks_equal"]
        out.append(("4 repeat", f"{r['method']} on resnet18_w16, d=0.01", measured,
                    "finishes, masks equal", "met" if ok else "missed"))
    return out


def stacked(rows: list[dict]) -> list[Row]:
    out = []
    for r in rows:
        what = f"{r['arch']} grid, --stack {r['stack']}"
        if not r.get("per_hour"):
            out.append(("5 stacked", what, f"exit {r['exit']}, {r['finished']}/{r['runs']} runs "
                        "finished", "", "failed"))
            continue
        measured = f"{r['finished']} runs in {r['stacks']} stacks, {r['per_hour']:.0f} runs/h"
        goal, verdict = "", ""
        base = next((b.get("per_hour") for b in rows
                     if b["arch"] == r["arch"] and b["stack"] == "off"), None)
        if base and r["stack"] != "off":
            speedup = r["per_hour"] / base
            measured += f", {speedup:.1f}x of one at a time"
            goal, verdict = ">= 10x of one at a time", "met" if speedup >= 10 else "missed"
        out.append(("5 stacked", what, measured, goal, verdict))
    return out


PARTS = [
    ("allocation.json", allocation, "1 allocation", "logs/allocation.log"),
    ("overhead.csv", overhead, "2 step time", "logs/overhead-*.log"),
    ("workers.json", workers, "3 workers", "logs/workers*.log"),
    ("repeat.json", repeat, "4 repeat", "logs/repeat*.log"),
    ("stacked.json", stacked, "5 stacked", "logs/stacked*.log"),
]


def table(out: Path) -> str:
    rows: list[Row] = []
    for name, build, part, log in PARTS:
        data = _load(out / name)
        if not data:
            rows.append((part, "(nothing measured)", f"see {log}", "", "not run"))
            continue
        rows += build(data)
    header = ("part", "what", "measured", "goal", "verdict")
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell.replace("|", "/") for cell in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    out = Path(args[0] if args else "device-check-out")
    text = table(out)
    header = (out / "header.txt").read_text() if (out / "header.txt").exists() else ""
    (out / "summary.md").write_text(header + "\n" + text if header else text)
    print(text, end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
