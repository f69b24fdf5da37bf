"""The device check's pieces on the CPU: its summary table, the grids' readers, the shell
script's arguments and the allocation benchmark's rows (the GPU run is a later session's)."""

from __future__ import annotations

import csv
import importlib.util
import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def report():
    return _load("device_report")


@pytest.fixture(scope="module")
def grids():
    return _load("device_grids")


def _write_parts(out: Path) -> None:
    allocation = [
        {"method": "synflow", "arch": "resnet18", "device": "cuda", "steps": {"steps": 100},
         "seconds": 1.2, "peak_mb": 350.0, "cpu_seconds": 19.39, "ratio": 1.2 / 19.39,
         "goal": 0.1, "verdict": "<= 0.1x: met"},
        {"method": "snip", "arch": "resnet18", "device": "cuda", "steps": {}, "seconds": 0.2,
         "peak_mb": 500.0, "cpu_seconds": 1.81, "ratio": 0.11, "goal": None, "verdict": "",
         "cpu_agreement": 0.99995},
        {"method": "force", "arch": "resnet18", "device": "cuda", "steps": {"steps": 60},
         "failure": "FORCE step 3/60: zero saliency"},
    ]
    (out / "allocation.json").write_text(json.dumps(allocation))
    with (out / "overhead.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, ["arch", "batch", "device", "precision", "layout",
                                         "steps", "harness_s", "bare_s", "ratio", "goal"])
        writer.writeheader()
        writer.writerow({"arch": "resnet18", "batch": 128, "device": "cuda", "precision": "32",
                         "layout": "contiguous", "steps": 30, "harness_s": 0.0210,
                         "bare_s": 0.0200, "ratio": 1.05 + 1e-9, "goal": 1.05})
    workers = [
        {"workers": 1, "exit": 0, "runs": 11, "finished": 11, "wall_s": 60, "span_s": 40,
         "per_hour": 990.0, "per_hour_wall": 660.0},
        {"workers": 4, "exit": 0, "runs": 11, "finished": 11, "wall_s": 20, "span_s": 12,
         "per_hour": 3300.0, "per_hour_wall": 1980.0},
    ]
    (out / "workers.json").write_text(json.dumps(workers))


def test_summary_table_has_every_part_and_its_verdicts(report, tmp_path: Path) -> None:
    _write_parts(tmp_path)
    (tmp_path / "header.txt").write_text("device check: a GPU\n")
    text = report.table(tmp_path)
    lines = text.splitlines()
    assert lines[0] == "| part | what | measured | goal | verdict |"
    synflow = next(line for line in lines if "synflow (100 steps)" in line)
    assert "< 1/10 of CPU time | met |" in synflow and "0.062x of CPU 19.39 s" in synflow
    assert "99.995% of mask = CPU's" in next(line for line in lines if "snip" in line)
    assert "failed: FORCE step 3/60" in next(line for line in lines if "force" in line)
    resnet = next(line for line in lines if line.startswith("| 2 step time"))
    assert "bench 21.00 ms, bare 20.00 ms: 1.050x | <= 1.05x | missed |" in resnet
    four = next(line for line in lines if "4 worker(s)" in line)
    assert "3.33x of 1 | >= 3x of 1 worker | met |" in four
    assert "| 4 repeat | (nothing measured) | see logs/repeat*.log |  | not run |" in lines
    report.main([str(tmp_path)])
    assert (tmp_path / "summary.md").read_text().startswith("device check: a GPU\n\n| part")


def test_repeat_rows_say_which_masks_differ(report) -> None:
    rows = report.repeat([
        {"method": "snip", "status_a": "finished", "status_b": "finished", "reason": None,
         "as_expected": True, "masks_equal": True, "weights_equal": False, "acc_a": 0.5,
         "acc_b": 0.51, "nondeterministic_ops": "scatter_add_cuda_kernel"},
        {"method": "force", "status_a": "finished", "status_b": "finished", "reason": None,
         "as_expected": True, "masks_equal": False, "weights_equal": False, "acc_a": None,
         "acc_b": None, "nondeterministic_ops": None},
        {"method": "(bench query layers)", "layers_equal": True, "layer_rows": 210},
    ])
    assert rows[0][2].startswith("finished/finished, masks equal, test acc 50.00/51.00%")
    assert "nondeterministic: scatter_add_cuda_kernel" in rows[0][2] and rows[0][4] == "met"
    assert "masks DIFFERENT" in rows[1][2] and rows[1][4] == "missed"
    assert rows[2][2] == "210 layer rows, equal" and rows[2][4] == "met"


def test_mask_digest_covers_masks_and_supports_only(grids, tmp_path: Path) -> None:
    state = {"model.fc.parametrizations.weight.0.mask": torch.tensor([True, False]),
             "model.conv1.indices": torch.tensor([3, 1], dtype=torch.int32),
             "model.fc.parametrizations.weight.original": torch.tensor([0.5, 0.25])}
    torch.save({"state_dict": state}, tmp_path / "a.ckpt")
    state["model.fc.parametrizations.weight.original"] = torch.tensor([0.5, 0.3])
    torch.save({"state_dict": state}, tmp_path / "b.ckpt")
    state["model.conv1.indices"] = torch.tensor([3, 2], dtype=torch.int32)
    torch.save({"state_dict": state}, tmp_path / "c.ckpt")
    a, b, c = (grids.mask_digest(tmp_path / f"{n}.ckpt") for n in "abc")
    assert a[0] == b[0] != c[0]  # the weights moved, then a support did
    assert a[1] != b[1]
    assert grids.mask_digest(tmp_path / "missing.ckpt") == (None, None)


def test_runs_are_read_without_sqlalchemy(grids, tmp_path: Path) -> None:
    db = tmp_path / "bench.db"
    with sqlite3.connect(db) as connection:
        connection.execute("CREATE TABLE runs (id INTEGER, status TEXT, started_at TEXT)")
        connection.execute("INSERT INTO runs VALUES (1, 'finished', '2026-12-01 03:51:18.17')")
    row = {"id": 1, "status": "finished", "started_at": "2026-12-01 03:51:18.17"}
    assert grids.runs(db) == [row]
    assert grids.when("2026-12-01 03:51:18.17").second == 18
    assert grids.runs(tmp_path / "none.db") == []


def test_bench_commands_stop_at_the_deadline(grids, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(grids, "DEADLINE", [0.0])
    code, seconds, out = grids.bench(["--help"], tmp_path / "log.txt", 60)
    assert (code, seconds, out) == (124, 0.0, "")
    assert "not run" in (tmp_path / "log.txt").read_text()


@pytest.mark.parametrize("argument", [["--bogus"], ["--accelerator", "tpu"]])
def test_device_check_rejects_bad_arguments(argument: list[str], tmp_path: Path) -> None:
    done = subprocess.run(["bash", str(ROOT / "benchmarks" / "device_check.sh"), *argument],
                          capture_output=True, text=True, env={"OUT": str(tmp_path), "PATH":
                          "/usr/bin:/bin"}, timeout=60)
    assert done.returncode == 2 and "device_check.sh:" in done.stderr
    assert not any(tmp_path.iterdir())


def test_carried_folders_are_ignored() -> None:
    lines = (ROOT / ".gitignore").read_text().splitlines()
    assert {".whl/", ".data/", "device-check-out/"} <= set(lines)


def test_allocation_rows_on_the_cpu(tmp_path: Path) -> None:
    allocation = _load("device_allocation")
    torch.set_num_threads(1)
    out = tmp_path / "allocation.json"
    allocation.main(["--device", "cpu", "--quick", "--methods", "random,synflow",
                     "--compare-cpu", "random", "--json", str(out)])
    rows = {row["method"]: row for row in json.loads(out.read_text())}
    assert rows["random"]["cpu_agreement"] == 1.0 and rows["random"]["forward"] == 0
    assert rows["synflow"]["steps"] == {"steps": 10} and rows["synflow"]["forward"] == 10
    assert rows["synflow"]["verdict"] == "<= 0.1x: n/a"  # no CPU figure for resnet18_w16
    assert len(rows["random"]["masks"]) == 12


def test_gpu_flags_without_a_gpu_are_one_line_errors(tmp_path: Path) -> None:
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is visible")
    overhead = _load("overhead")
    with pytest.raises(SystemExit) as info:
        overhead.parse_args(["--accelerator", "gpu"])
    assert info.value.code == 2
    allocation = _load("device_allocation")
    with pytest.raises(SystemExit):
        allocation.main(["--device", "cuda"])


def test_stacked_rows_compare_runs_per_hour_with_one_at_a_time(report) -> None:
    rows = report.stacked([
        {"arch": "lenet5", "stack": "off", "exit": 0, "runs": 33, "finished": 33,
         "stacks": 0, "per_hour": 600.0},
        {"arch": "lenet5", "stack": "auto", "exit": 0, "runs": 33, "finished": 33,
         "stacks": 2, "per_hour": 7200.0},
        {"arch": "resnet18_w16", "stack": "auto", "exit": 1, "runs": 33, "finished": 0,
         "stacks": 0, "per_hour": None},
    ])  # fmt: skip
    assert rows[0][2] == "33 runs in 0 stacks, 600 runs/h" and rows[0][4] == ""
    assert rows[1][2].endswith("12.0x of one at a time") and rows[1][3:] == (
        ">= 10x of one at a time",
        "met",
    )
    assert rows[2][2] == "exit 1, 0/33 runs finished" and rows[2][4] == "failed"
