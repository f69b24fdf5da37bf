"""The accelerator path, checked on the CPU: precision and layout as their own series, ops
without a deterministic kernel recorded, workers placed on devices, data moved to a device once."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import storage
from bench.cli import build_parser, main
from bench.config import RunConfig
from bench.data import make_datamodule
from bench.options import parse_device, values
from bench.settings import LocalPool, WorkerPlace
from bench.training import nondeterministic_ops
from storage.spec import budget_label

BASE = RunConfig("small_cnn", "digits", "epl", 0.1, epochs=1)


def test_precision_and_layout_are_their_own_series() -> None:
    bf16 = RunConfig("small_cnn", "digits", "epl", 0.1, epochs=1, precision="bf16-mixed")
    layout = RunConfig("small_cnn", "digits", "epl", 0.1, epochs=1, channels_last=True)
    explicit = RunConfig("small_cnn", "digits", "epl", 0.1, epochs=1, precision="32")
    assert explicit.config_hash() == BASE.config_hash(), "the default stays out of the identity"
    assert len({BASE.config_hash(), bf16.config_hash(), layout.config_hash()}) == 3
    assert "precision" not in BASE.identity() and bf16.identity()["precision"] == "bf16-mixed"
    assert budget_label(BASE.to_json()) == "adam, 1 epoch, all images"
    assert budget_label(bf16.to_json()) == "adam, 1 epoch, all images, bf16-mixed"
    assert budget_label(layout.to_json()) == "adam, 1 epoch, all images, channels-last"


def test_bf16_channels_last_run_is_stored_beside_fp32(
    db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    common = ["run", "--arch", "small_cnn", "--methods", "epl", "--densities", "0.1"]
    common += ["--epochs", "1", "--train-subset", "100", "--db", db_url, "--no-progress"]
    common += ["--runs-dir", str(tmp_path / "runs"), "--threads", "1"]
    assert main(common) == 0
    assert main([*common, "--precision", "bf16-mixed", "--channels-last"]) == 0
    out = capsys.readouterr().out
    assert "(adam, 1 epoch, 100 images, bf16-mixed, channels-last)" in out
    engine = storage.open_db(db_url)
    runs = storage.runs(engine)
    assert len(runs) == 4 and set(runs["status"]) == {"finished"}
    assert runs["deterministic"].tolist() == [True] * 4  # no op without a deterministic kernel
    assert sorted(set(runs["precision"].fillna("32"))) == ["32", "bf16-mixed"]
    accuracy = storage.accuracy(engine)
    assert len(accuracy) == 4 and (accuracy["n"] == 1).all(), "never averaged together"


def test_nondeterministic_ops_are_named_from_torch_warnings() -> None:
    messages = [
        "adaptive_avg_pool2d_backward_cuda does not have a deterministic implementation, but "
        "you set 'torch.use_deterministic_algorithms(True, warn_only=True)'.",
        "index_add_cuda_ does not have a deterministic implementation, but you set ...",
        "adaptive_avg_pool2d_backward_cuda does not have a deterministic implementation, ...",
        "some other warning",
    ]
    assert nondeterministic_ops(messages) == [
        "adaptive_avg_pool2d_backward_cuda",
        "index_add_cuda_",
    ]
    assert nondeterministic_ops([]) == []


def test_devices_and_device_flags() -> None:
    parser = build_parser()
    args = parser.parse_args(["run", "--workers", "4", "--devices", "0", "1"])
    assert LocalPool(**values(args, LocalPool)).devices == (0, 1)
    args = parser.parse_args(["worker", "--device", "cuda:1"])
    assert WorkerPlace(**values(args, WorkerPlace)).device == 1
    assert parse_device("2") == 2 and parse_device("gpu:3") == 3
    with pytest.raises(Exception, match="bad device 'cuda:x'"):
        parse_device("cuda:x")


def test_data_moves_to_a_device_once_and_batches_stay_the_same() -> None:
    module = make_datamodule("digits", batch_size=32, seed=3)
    module.setup()
    before = [(x.clone(), y.clone()) for x, y in module.train_dataloader()]
    module.to_device("cpu")
    after = list(module.train_dataloader())
    assert len(before) == len(after)
    for (x0, y0), (x1, y1) in zip(before, after):
        assert torch.equal(x0, x1) and torch.equal(y0, y1)


def test_cublas_workspace_is_set_before_cuda_starts() -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("CUBLAS_WORKSPACE_CONFIG",)}
    code = "import os, bench.pipeline; print(os.environ['CUBLAS_WORKSPACE_CONFIG'])"
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == ":4096:8"
