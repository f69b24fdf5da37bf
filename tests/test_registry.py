"""The method registry: names, typed options, errors, plugin files and entry points."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

import methods
from methods.registry import _REGISTRY

ROOT = Path(__file__).resolve().parents[1]


def test_builtin_methods_are_registered() -> None:
    names = methods.available()
    for name in ["dense", "random", "epl", "epf"]:
        assert name in names
        assert methods.method_class(name).origin == "built-in"


def test_unknown_method_names_valid_ones() -> None:
    with pytest.raises(methods.UnknownMethod, match=r"unknown method 'nope' \(valid: .*epl"):
        methods.get("nope")


def test_unknown_option_names_valid_ones() -> None:
    with pytest.raises(
        methods.UnknownMethod, match=r"unknown option 'foo' for method 'epf' \(valid: within\)"
    ):
        methods.get("epf", foo=1)


def test_option_values_are_typed() -> None:
    assert methods.get("epf", within="filter").within == "filter"
    with pytest.raises(methods.UnknownMethod, match=r"bad value 'row'.*valid: layer, filter"):
        methods.get("epf", within="row")


def test_parse_spec() -> None:
    assert methods.parse_spec("dctps:allocation=epf,impl=factored") == (
        "dctps",
        {"allocation": "epf", "impl": "factored"},
    )
    assert methods.parse_spec("SNIP") == ("snip", {})
    with pytest.raises(methods.UnknownMethod, match="expected key=value"):
        methods.parse_spec("force:steps")


def readme_example() -> str:
    """The Python block under README's 'Adding a method' heading."""
    text = (ROOT / "README.md").read_text()
    section = text.split("## Adding a method", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match, "README 'Adding a method' has no python example"
    return match.group(1)


def test_readme_example_registers_a_working_method(tmp_path: Path) -> None:
    code = readme_example()
    assert len(code.strip().splitlines()) <= 15
    plugin = tmp_path / "my_method.py"
    plugin.write_text(code)
    try:
        added = methods.load_plugin(plugin)
        assert added, "the README example registered nothing"
        name = added[0]
        assert methods.method_class(name).origin.startswith("plugin ")
        model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 4))
        allocation = methods.get(name).allocate(model, 0.25)
        assert allocation.kept == round(0.25 * (8 * 16 + 16 * 4))
    finally:
        for name in methods.available():
            if methods.method_class(name).origin.startswith("plugin "):
                del _REGISTRY[name]


def test_plugin_file_through_cli(tmp_path: Path, db_url: str) -> None:
    plugin = tmp_path / "my_method.py"
    plugin.write_text(readme_example())
    out = subprocess.run(
        [sys.executable, "-m", "bench.cli", "methods", "--plugin", str(plugin)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "magnitude" in out and "plugin" in out


def test_entry_point_plugin(tmp_path: Path) -> None:
    """An installed distribution advertising the paibench.methods group is picked up."""
    site = tmp_path / "site"
    pkg = site / "paibench_demo_plugin"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text(
        textwrap.dedent(
            """
            import torch
            import methods

            class Ones(methods.Method):
                description = "keeps the first k weights (demo)"

                def select(self, model, layers, k, context):
                    scores = {
                        layer.name: -torch.arange(layer.numel, dtype=torch.float32).reshape(
                            layer.weight.shape
                        )
                        for layer in layers
                    }
                    return methods.global_topk(scores, k), {}
            """
        )
    )
    dist = site / "paibench_demo_plugin-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: paibench-demo-plugin\nVersion: 1.0\n"
    )
    (dist / "entry_points.txt").write_text(
        "[paibench.methods]\nfirst = paibench_demo_plugin:Ones\n"
    )
    code = "import methods; print(methods.method_class('first').origin); print(methods.available())"
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={**__import__("os").environ, "PYTHONPATH": f"{site}:{ROOT}"},
    ).stdout
    assert "entry point paibench_demo_plugin:Ones" in out
    assert "'first'" in out
