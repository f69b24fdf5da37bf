"""bench.plugins: one file registering a method, an architecture and a data set; the one-line
errors of a missing, unparsable or failing file; the three entry-point groups."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest

import architectures
import bench.data
import methods
from architectures import entry_points as shared_loader
from architectures import registry as arch_registry
from bench import plugins
from bench.data import registry as data_registry
from bench.errors import BenchError
from methods import registry as method_registry

ROOT = Path(__file__).resolve().parents[1]

ONE_OF_EACH = '''
import torch
from torch import nn

import architectures
import bench.data
import methods


@methods.register("first_k")
class FirstK(methods.Method):
    """Keeps the first k weights."""

    description = "first k weights (test)"

    def select(self, model, layers, k, context):
        scores = {
            layer.name: -torch.arange(layer.numel, dtype=torch.float32).reshape(layer.weight.shape)
            for layer in layers
        }
        return methods.global_topk(scores, k), {}


@architectures.register("plugin_linear", description="one linear layer (test)")
def plugin_linear(num_classes, input_shape):
    return nn.Sequential(nn.Flatten(), nn.Linear(input_shape[0] * input_shape[1] * input_shape[2],
                                                 num_classes))


@bench.data.register("plugin_pairs", input_shape=(1, 1, 2), num_classes=2, batches_per_step=3)
def plugin_pairs():
    """x in R^2, label = x[0] > 0 (test)."""
    x = torch.linspace(-1, 1, 40).reshape(20, 2)
    y = (x[:, 0] > 0).long()
    return x[:16], y[:16], x[16:], y[16:]
'''


@pytest.fixture
def clean_registries() -> Iterator[None]:
    """Restore the three registries (and their entry-point flags) after the test."""
    saved = (
        dict(method_registry._REGISTRY),
        dict(arch_registry._ARCHS),
        dict(data_registry.DATASETS),
        method_registry._entry_points_loaded,
        arch_registry._entry_points_loaded,
        data_registry._entry_points_loaded,
    )
    yield
    for registry, before in zip(
        (method_registry._REGISTRY, arch_registry._ARCHS, data_registry.DATASETS), saved
    ):
        registry.clear()
        registry.update(before)
    (
        method_registry._entry_points_loaded,
        arch_registry._entry_points_loaded,
        data_registry._entry_points_loaded,
    ) = saved[3:]


def test_a_file_registering_one_of_each(tmp_path: Path, clean_registries: None) -> None:
    path = tmp_path / "one_of_each.py"
    path.write_text(ONE_OF_EACH)
    added = plugins.load_file(path)
    assert (added.methods, added.architectures, added.datasets) == (
        ("first_k",),
        ("plugin_linear",),
        ("plugin_pairs",),
    )
    assert added and added.source == str(path.resolve())
    origin = f"plugin {path.resolve()}"
    assert methods.method_class("first_k").origin == origin
    assert architectures.spec("plugin_linear").origin == origin
    assert bench.data.dataset_spec("plugin_pairs").origin == origin
    assert added.describe() == (
        f"{path.resolve()}: method first_k; architecture plugin_linear; data set plugin_pairs"
    )
    # What it registered works together.
    data = bench.data.make_datamodule("plugin_pairs", batch_size=4)
    data.setup()
    model = architectures.build("plugin_linear", data.num_classes, input_shape=data.input_shape)
    allocation = methods.get("first_k").allocate(model, 0.5)
    assert allocation.kept == 2 and bench.data.dataset_spec("plugin_pairs").batches_per_step == 3
    assert model(data.x_train[:3]).shape == (3, 2)


def test_a_file_registering_nothing(tmp_path: Path, clean_registries: None) -> None:
    path = tmp_path / "empty.py"
    path.write_text("X = 1\n")
    added = plugins.load_file(path)
    assert not added and added.describe().endswith(": nothing registered")


def test_missing_file_is_one_line_naming_it(tmp_path: Path) -> None:
    missing = tmp_path / "nope.py"
    with pytest.raises(BenchError, match=r"^plugin file '.*nope\.py' does not exist$"):
        plugins.load_file(missing)
    with pytest.raises(BenchError, match="is not a file"):
        plugins.load_file(tmp_path)


def test_syntax_error_names_file_and_line(tmp_path: Path, clean_registries: None) -> None:
    path = tmp_path / "broken.py"
    path.write_text("import methods\n\ndef f(:\n    pass\n")
    with pytest.raises(BenchError, match=r"broken\.py': syntax error at line 3: ") as info:
        plugins.load_file(path)
    assert "\n" not in str(info.value)


def test_failing_file_names_file_line_and_error(tmp_path: Path, clean_registries: None) -> None:
    path = tmp_path / "clash.py"
    path.write_text(
        "import architectures\n\n\n"
        "@architectures.register('mlp')\n"
        "def mlp(num_classes, input_shape):\n"
        "    return None\n"
    )
    with pytest.raises(
        BenchError,
        match=r"clash\.py' failed at line 4: ValueError: architecture 'mlp' is already "
        r"registered \(by built-in\)",
    ):
        plugins.load_file(path)
    assert architectures.spec("mlp").origin == "built-in"


def test_load_files_in_order(tmp_path: Path, clean_registries: None) -> None:
    first, second = tmp_path / "a.py", tmp_path / "b.py"
    first.write_text(ONE_OF_EACH)
    second.write_text(
        "import architectures\nfrom torch import nn\n\n"
        "@architectures.register('plugin_linear2')\n"
        "def f(num_classes, input_shape):\n    return nn.Linear(1, num_classes)\n"
    )
    loaded = plugins.load_files([first, second])
    assert [r.architectures for r in loaded] == [("plugin_linear",), ("plugin_linear2",)]


def test_entry_points_of_all_three_groups(tmp_path: Path) -> None:
    """An installed distribution advertising the three groups is picked up, labelled by entry
    point; a module entry runs its decorators, a bare builder/class is registered by name."""
    site = tmp_path / "site"
    pkg = site / "paibench_demo_all"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text(
        ONE_OF_EACH
        + textwrap.dedent(
            '''

            def bare_builder(num_classes, input_shape):
                """a bare builder (test)"""
                return nn.Sequential(nn.Flatten(), nn.LazyLinear(num_classes))


            class BareData(bench.data.TensorDataModule):
                """a bare data module (test)"""

                input_shape = (1, 1, 2)
                num_classes = 2
            '''
        )
    )
    dist = site / "paibench_demo_all-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: paibench-demo-all\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(
        "[paibench.methods]\nfirst_k = paibench_demo_all\n"
        "[paibench.architectures]\ndemo = paibench_demo_all\n"
        "bare_arch = paibench_demo_all:bare_builder\n"
        "[paibench.datasets]\ndemo = paibench_demo_all\nbare_data = paibench_demo_all:BareData\n"
    )
    code = textwrap.dedent(
        """
        import architectures, bench.data, methods
        from bench import plugins
        print(plugins.load_entry_points().describe())
        print(methods.method_class("first_k").origin)
        for name in ("plugin_linear", "bare_arch"):
            print(name, architectures.spec(name).origin, architectures.spec(name).description)
        for name in ("plugin_pairs", "bare_data"):
            print(name, bench.data.dataset_spec(name).origin)
        print(architectures.spec("mlp").origin, bench.data.dataset_spec("digits").origin)
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": f"{site}{os.pathsep}{ROOT}", "OMP_NUM_THREADS": "1"},
    ).stdout.splitlines()
    assert out == [
        "entry points: method first_k; architecture bare_arch, plugin_linear; "
        "data set bare_data, plugin_pairs",
        "entry point paibench_demo_all",
        "plugin_linear entry point paibench_demo_all one linear layer (test)",
        "bare_arch entry point paibench_demo_all:bare_builder a bare builder (test)",
        "plugin_pairs entry point paibench_demo_all",
        "bare_data entry point paibench_demo_all:BareData",
        "built-in built-in",
    ]


@pytest.mark.parametrize(
    ("module", "group", "registry"),
    [
        (shared_loader, architectures.ENTRY_POINT_GROUP, arch_registry),
        (shared_loader, bench.data.ENTRY_POINT_GROUP, data_registry),
    ],
    ids=["architectures", "datasets"],
)
def test_a_broken_entry_point_is_one_line(
    monkeypatch: pytest.MonkeyPatch,
    clean_registries: None,
    module: object,
    group: str,
    registry: object,
) -> None:
    broken = EntryPoint(name="broken", value="paibench_no_such_module:thing", group=group)
    only_this = lambda group: [broken] if group == broken.group else []  # noqa: E731
    monkeypatch.setattr(module, "entry_points", only_this)
    monkeypatch.setattr(registry, "_entry_points_loaded", False)
    with pytest.raises(
        BenchError,
        match=rf"^entry point broken = paibench_no_such_module:thing of group {group} failed to "
        r"load: ModuleNotFoundError: No module named 'paibench_no_such_module'$",
    ):
        plugins.load_entry_points()


def test_load_entry_points_without_any_installed() -> None:
    found = plugins.load_entry_points()
    assert found.source == "entry points"
    assert "mlp" not in found.architectures and "digits" not in found.datasets
    assert "random" not in found.methods


def test_broken_method_entry_point_and_clashing_builder_name_their_group(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, clean_registries: None
) -> None:
    broken = EntryPoint(name="broken", value="paibench_no_such_module", group="paibench.methods")
    monkeypatch.setattr(method_registry, "entry_points", lambda group: [broken])
    monkeypatch.setattr(method_registry, "_entry_points_loaded", False)
    with pytest.raises(
        BenchError,
        match=r"^entry points of group paibench.methods failed to load: ModuleNotFoundError: ",
    ):
        plugins.load_entry_points()
    (tmp_path / "paibench_clash_demo.py").write_text(
        "def builder(num_classes, input_shape):\n    return None\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    clash = EntryPoint(name="mlp", value="paibench_clash_demo:builder", group="x")
    only_archs = lambda group: [clash] if group == architectures.ENTRY_POINT_GROUP else []  # noqa: E731
    monkeypatch.setattr(shared_loader, "entry_points", only_archs)
    monkeypatch.setattr(arch_registry, "_entry_points_loaded", False)
    with pytest.raises(
        BenchError,
        match=r"^entry points of group paibench.architectures failed to load: ValueError: "
        r"architecture 'mlp' is already registered \(by built-in\)$",
    ):
        plugins.load_entry_points()
