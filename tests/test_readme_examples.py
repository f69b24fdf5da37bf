"""README's "Adding a method", "Adding an architecture" and "Adding a data set" examples, taken
from README.md as written, run as plugin files through the CLI on a tiny grid, with the rows
they leave in the database checked."""

from __future__ import annotations

import re
import shlex
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

import storage
from architectures import registry as arch_registry
from bench.cli import main
from bench.data import registry as data_registry
from methods import registry as method_registry

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
MAX_LINES = 20  # each example is at most 20 lines of Python
# Appended to each README command: a one-run-per-method grid of one epoch, into the test's own
# database and checkpoint folder (the last --methods/--densities/--epochs given wins).
TINY = ["--methods", "random", "--densities", "0.1", "--epochs", "1"]


def section(heading: str) -> str:
    """The README text under ``## heading``, up to the next ``## `` heading."""
    parts = re.split(rf"^## {re.escape(heading)}\n", README, flags=re.M)
    assert len(parts) == 2, f"README has no single '## {heading}' section"
    return re.split(r"^## ", parts[1], flags=re.M)[0]


def python_block(text: str) -> str:
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    assert len(blocks) == 1, "expected one python example"
    return blocks[0]


def run_command(text: str) -> list[str]:
    """The ``bench run ...`` command of a section (a code block, or inline code), as argv."""
    commands = re.findall(r"^bench run [^\n`]*", text, re.M) or re.findall(
        r"`(bench run [^`]*)`", text
    )
    assert len(commands) == 1, f"expected one 'bench run' command, found {commands}"
    return shlex.split(commands[0])[1:]


@pytest.fixture
def isolated(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """What a plugin file registers, and the torch threads the CLI sets, end with the test."""
    saved = (
        dict(method_registry._REGISTRY),
        dict(arch_registry._ARCHS),
        dict(data_registry.DATASETS),
    )
    modules = set(sys.modules)
    threads = torch.get_num_threads()
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    yield
    torch.set_num_threads(threads)
    for registry, before in zip(
        (method_registry._REGISTRY, arch_registry._ARCHS, data_registry.DATASETS), saved
    ):
        registry.clear()
        registry.update(before)
    for name in set(sys.modules) - modules:
        if name.startswith("paibench_plugin_"):
            del sys.modules[name]


def run_example(heading: str, tmp_path: Path) -> tuple[list[str], object]:
    """Write the section's example where its command expects it, run the command (made tiny)
    and return the argv and the finished runs."""
    text = section(heading)
    code = python_block(text)
    assert len(code.strip().splitlines()) <= MAX_LINES, f"'{heading}' example is too long"
    argv = run_command(text)
    assert argv[0] == "run" and "--plugin" in argv
    at = argv.index("--plugin") + 1
    plugin = tmp_path / argv[at]
    plugin.write_text(code)
    argv[at] = str(plugin)
    db = f"sqlite:///{tmp_path / 'bench.db'}"
    extra = ["--db", db, "--runs-dir", str(tmp_path / "runs"), "--no-progress", "--threads", "1"]
    assert main([*argv, *TINY, *extra]) == 0
    runs = storage.runs(storage.open_db(db))
    assert list(runs["status"]) == ["finished", "finished"]
    assert sorted(runs["method"]) == ["dense", "random"]
    return argv, runs


def test_adding_an_architecture(tmp_path: Path, isolated: None) -> None:
    argv, runs = run_example("Adding an architecture", tmp_path)
    arch = argv[argv.index("--archs") + 1]
    assert set(runs["arch"]) == {arch} and set(runs["dataset"]) == {"digits"}
    assert arch_registry._ARCHS[arch].origin.startswith(("plugin ", "paibench_plugin_"))
    assert (runs["test_acc"] >= 0).all()


def test_adding_a_data_set(tmp_path: Path, isolated: None) -> None:
    argv, runs = run_example("Adding a data set", tmp_path)
    dataset = argv[argv.index("--datasets") + 1]
    spec = data_registry.DATASETS[dataset]
    assert set(runs["dataset"]) == {dataset} and set(runs["arch"]) == {spec.default_arch}
    assert spec.origin.startswith(("plugin ", "paibench_plugin_"))
    assert (runs["test_acc"] >= 0).all()


def test_adding_a_method(tmp_path: Path, isolated: None) -> None:
    """The method example runs in a grid too (tests/test_registry.py checks what it selects)."""
    text = section("Adding a method")
    argv = run_command(text)
    method = argv[argv.index("--methods") + 1]
    plugin = tmp_path / argv[argv.index("--plugin") + 1]
    plugin.write_text(python_block(text))
    db = f"sqlite:///{tmp_path / 'bench.db'}"
    argv[argv.index("--plugin") + 1] = str(plugin)
    extra = ["--densities", "0.1", "--epochs", "1", "--db", db, "--runs-dir", str(tmp_path / "r")]
    assert main([*argv, *extra, "--no-progress", "--threads", "1"]) == 0
    runs = storage.runs(storage.open_db(db))
    assert list(runs["status"]) == ["finished", "finished"]
    assert sorted(runs["method"]) == ["dense", method]
    assert set(runs["arch"]) == {"mlp"} and set(runs["dataset"]) == {"digits"}
