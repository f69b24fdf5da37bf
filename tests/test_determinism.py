"""Same config, same result, bit for bit, in two separate processes on the CPU."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import torch

import storage
from bench.config import RunConfig


def run_in_process(workdir: Path, seed: int) -> Path:
    workdir.mkdir()
    subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.cli",
            "run",
            "--methods",
            "epl",
            "--densities",
            "0.05",
            "--epochs",
            "2",
            "--seeds",
            str(seed),
            "--db",
            f"sqlite:///{workdir / 'bench.db'}",
            "--runs-dir",
            str(workdir / "runs"),
            "--no-progress",
            "--stack",
            "off",  # reads the unstacked run's best.ckpt
        ],
        check=True,
        capture_output=True,
        cwd=workdir,
    )
    return workdir


def test_two_processes_give_identical_masks_weights_and_accuracy(tmp_path: Path) -> None:
    a = run_in_process(tmp_path / "a", seed=3)
    b = run_in_process(tmp_path / "b", seed=3)
    c = run_in_process(tmp_path / "c", seed=4)
    frames = [storage.runs(storage.open_db(f"sqlite:///{d / 'bench.db'}")) for d in (a, b, c)]
    cols = ["config_hash", "method", "density", "kept", "best_val_acc", "test_acc"]
    assert frames[0][cols].equals(frames[1][cols])
    epl_hash = frames[0].loc[frames[0]["method"] == "epl", "config_hash"].item()

    def best_state(workdir: Path, config_hash: str) -> dict[str, torch.Tensor]:
        path = workdir / "runs" / config_hash / "best.ckpt"
        return torch.load(path, map_location="cpu", weights_only=True)["state_dict"]

    state_a, state_b = best_state(a, epl_hash), best_state(b, epl_hash)
    masks = [k for k in state_a if k.endswith(".mask")]
    assert len(masks) == 3
    for key in state_a:
        assert torch.equal(state_a[key], state_b[key]), key
    other_hash = frames[2].loc[frames[2]["method"] == "epl", "config_hash"].item()
    state_c = best_state(c, other_hash)
    assert any(not torch.equal(state_a[k], state_c[k]) for k in masks), "seed must change masks"


def test_config_hashes_are_pinned() -> None:
    """Changing these literals renames every stored run: only ever do it with a migration."""
    assert RunConfig("mlp", "digits", "epl", 0.01).config_hash() == PINNED["epl"]
    assert (
        RunConfig("mlp", "digits", "random", 0.1, seed=2, epochs=15).config_hash()
        == PINNED["random"]
    )
    assert (
        RunConfig(
            "resnet18", "cifar10", "dctps", 0.001, options={"allocation": "epf"}, preset="sgd"
        ).config_hash()
        == PINNED["dctps"]
    )


PINNED = {"epl": "6b6d308a4220be6b", "random": "ff7e4b03b764734a", "dctps": "a2f2bcc15396a57a"}


def test_hash_ignores_defaults_and_execution_fields() -> None:
    base = RunConfig("mlp", "digits", "epl", 0.01)
    assert (
        RunConfig("mlp", "digits", "epl", 0.01, preset="adam").config_hash() == base.config_hash()
    )
    assert RunConfig(
        "mlp", "digits", "epl", 0.01, accelerator="gpu", data_dir="/x"
    ).config_hash() == (base.config_hash())
    assert RunConfig("mlp", "digits", "epl", 0.01, seed=1).config_hash() != base.config_hash()
    assert RunConfig("mlp", "digits", "epl", 0.01, epochs=3).config_hash() != base.config_hash()
