"""Reports from a database of known rows: every table cell equals the database's aggregate, every
figure has the lines, bands and markers the rows call for, failures are shown as failures, and
``bench report`` writes it all with an index.html (one section per arch x data set x budget;
tests/test_reports_budgets.py has several budgets and code versions)."""

from __future__ import annotations

import io
import re
import statistics
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from known_rows import BUDGET_LABEL, LAYER_TOTALS, fill_known_rows
from matplotlib.axes import Axes
from matplotlib.collections import PolyCollection
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from sqlalchemy import Engine, select

import reports
import storage
from bench.cli import main
from reports.style import (
    budget_slug,
    chance_accuracy,
    density_palette,
    format_density,
    method_palette,
)
from storage.schema import AllocationCostRow, Run
from storage.spec import budget_label


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Engine:
    engine = storage.open_db(f"sqlite:///{tmp_path_factory.mktemp('db') / 'known.db'}")
    fill_known_rows(engine)
    return engine


@pytest.fixture(scope="module")
def report_dir(engine: Engine, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("report")
    reports.build_report(engine, out)
    return out


# --- what the database says, computed with plain SQL and the statistics module ---------------

Config = tuple[str, str, str, str, float]  # arch, dataset, budget label, method, density
SLUG = budget_slug(BUDGET_LABEL)


def _db_values(engine: Engine, status: str, column: str) -> dict[Config, list]:
    """``column`` of the runs of ``status``, per config (budget: the label of its config JSON)."""
    values: dict[Config, list] = defaultdict(list)
    stmt = select(
        Run.arch, Run.dataset, Run.config, Run.method, Run.density, getattr(Run, column)
    ).where(Run.status == status)
    with engine.connect() as conn:
        for arch, dataset, config, method, density, value in conn.execute(stmt):
            values[(arch, dataset, budget_label(config), method, density)].append(value)
    return values


def _db_accuracy(engine: Engine) -> dict[Config, list[float]]:
    return _db_values(engine, "finished", "test_acc")


def _db_failed(engine: Engine) -> dict[Config, list[str]]:
    return _db_values(engine, "failed", "reason")


def _stats(values: list[float]) -> tuple[float, float]:
    return statistics.mean(values), statistics.stdev(values) if len(values) > 1 else 0.0


CELL = re.compile(
    r"^(?P<mean>\d+\.\d\d) ± (?P<std>\d+\.\d\d) \((?P<n>\d+)(?:, (?P<failed>\d+) failed)?\)"
    r"(?: Δ (?P<delta>[+-]\d+\.\d\d))?$"
)


def _tables(engine: Engine) -> dict[tuple[str, str, str], pd.DataFrame]:
    return reports.accuracy_table(storage.accuracy(engine))


def test_every_accuracy_cell_equals_the_database_aggregate(engine: Engine) -> None:
    accuracy, failed = _db_accuracy(engine), _db_failed(engine)
    tables = _tables(engine)
    assert set(tables) == {
        ("mlp", "digits", BUDGET_LABEL),
        ("small_cnn", "cifar100", BUDGET_LABEL),
    }
    seen = set()
    for (arch, dataset, budget), table in tables.items():
        assert table.index[0] == "dense"  # the baseline first, then methods by name
        assert list(table.index[1:]) == sorted(table.index[1:])
        densities = [float(c) for c in table.columns]
        assert densities == sorted(densities, reverse=True)
        dense_mean, _ = _stats(accuracy[(arch, dataset, budget, "dense", 1.0)])
        for method in table.index:
            for column in table.columns:
                key = (arch, dataset, budget, method, float(column))
                cell = table.loc[method, column]
                if key in accuracy:
                    match = CELL.match(cell)
                    assert match, cell
                    mean, std = _stats(accuracy[key])
                    assert float(match["mean"]) == pytest.approx(100 * mean, abs=0.005)
                    assert float(match["std"]) == pytest.approx(100 * std, abs=0.005)
                    assert int(match["n"]) == len(accuracy[key])
                    assert int(match["failed"] or 0) == len(failed.get(key, []))
                    if method == "dense":
                        assert match["delta"] is None
                    else:
                        delta = 100 * (mean - dense_mean)
                        assert float(match["delta"]) == pytest.approx(delta, abs=0.005)
                elif key in failed:
                    reason = "; ".join(sorted(set(failed[key])))
                    assert cell == f"n/a ({reason})"
                else:
                    assert cell == ""
                    continue
                seen.add(key)
    assert seen == set(accuracy) | set(failed)  # every config with a result is in a table


def test_partial_and_total_failures_are_shown_as_such(engine: Engine) -> None:
    table = _tables(engine)[("mlp", "digits", BUDGET_LABEL)]
    assert table.loc["epl", "0.01"] == "60.00 ± 0.00 (1, 1 failed) Δ -36.00"
    assert table.loc["epl", "0.001"] == "n/a (zero gradient)"
    assert table.loc["snip", "0.001"] == "n/a (saliency all zero & more)"
    assert reports.format_failure("x" * 100) == f"n/a ({'x' * 39}…)"


def test_cost_cells_equal_the_database_aggregate(engine: Engine) -> None:
    stmt = select(
        Run.arch, Run.dataset, Run.config, Run.method, Run.density, Run.trainable_params,
        AllocationCostRow.seconds, AllocationCostRow.peak_bytes,
        AllocationCostRow.forward_passes, AllocationCostRow.backward_passes,
    ).join(AllocationCostRow, AllocationCostRow.run_id == Run.id)  # fmt: skip
    groups: dict[Config, list[tuple]] = defaultdict(list)
    with engine.connect() as conn:
        for arch, dataset, config, method, density, *values in conn.execute(stmt):
            budget = budget_label(config)
            groups[(arch, dataset, budget, method, density)].append(tuple(values))
    tables = reports.cost_table(storage.allocation_cost(engine))
    cells = 0
    for (arch, dataset, budget), table in tables.items():
        for (method, density), row in table.iterrows():
            values = groups[(arch, dataset, budget, method, float(density))]
            params, seconds, peak, forward, backward = (list(v) for v in zip(*values))
            mean, std = _stats(seconds)
            assert row["allocation s (mean ± std)"] == f"{mean:.3f} ± {std:.3f}"
            assert float(row["peak memory MiB"]) == pytest.approx(
                statistics.mean(peak) / 2**20, abs=0.05
            )
            assert float(row["forward passes"]) == pytest.approx(statistics.mean(forward), 0.05)
            assert float(row["backward passes"]) == pytest.approx(statistics.mean(backward), 0.05)
            assert int(row["trainable params"].replace(",", "")) == statistics.mean(params)
            assert int(row["runs"]) == len(values)
            cells += 1
    assert cells == len(groups)  # one row per method x density that measured an allocation


def test_table_files_in_every_format(report_dir: Path, engine: Engine) -> None:
    table = _tables(engine)[("small_cnn", "cifar100", BUDGET_LABEL)]
    name = f"accuracy_small_cnn_cifar100_{SLUG}"
    assert SLUG == "adam-10-epochs-5000-images"
    csv = pd.read_csv(report_dir / f"{name}.csv", index_col=0, dtype=str)
    assert csv.fillna("").equals(table.set_axis(list(csv.columns), axis=1))
    markdown = (report_dir / f"{name}.md").read_text()
    assert "| my_plugin" in markdown and "n/a (singular)" in markdown
    latex = (report_dir / f"{name}.tex").read_text()
    for rule in (r"\toprule", r"\midrule", r"\bottomrule"):
        assert latex.count(rule) == 1
    assert r"my\_plugin" in latex and r"$\pm$" in latex and r"$\Delta$" in latex
    assert "±" not in latex and "Δ" not in latex
    cost = (report_dir / f"cost_mlp_digits_{SLUG}.tex").read_text()
    assert r"\toprule" in cost and r"$\pm$" in cost


# --- figures -----------------------------------------------------------------------------------


def _by_gid(ax: Axes, prefix: str, kind: type = Line2D) -> list:
    artists = [*ax.lines, *ax.collections]
    return [a for a in artists if isinstance(a, kind) and (a.get_gid() or "").startswith(prefix)]


def _panel(figure: Figure, title: str, budget: str = BUDGET_LABEL) -> Axes:
    (ax,) = [ax for ax in figure.axes if ax.get_title() == f"{title}\n{budget}"]
    return ax


@pytest.fixture(scope="module")
def accuracy_figure(engine: Engine) -> Iterator[Figure]:
    yield reports.accuracy_figure(storage.accuracy(engine))


def test_accuracy_figure_lines_bands_and_failures(accuracy_figure: Figure, engine: Engine) -> None:
    accuracy, failed = _db_accuracy(engine), _db_failed(engine)
    assert len(accuracy_figure.axes) == 2
    for (arch, dataset), methods in {
        ("mlp", "digits"): ["epl", "snip"],
        ("small_cnn", "cifar100"): ["my_plugin", "snip"],
    }.items():
        ax = _panel(accuracy_figure, f"{arch} on {dataset}")
        assert ax.get_xscale() == "log" and ax.get_yscale() == "linear"
        means = _by_gid(ax, "mean:")
        assert sorted(line.get_gid() for line in means) == [f"mean:{m}" for m in methods]
        assert len(_by_gid(ax, "band:", PolyCollection)) == len(methods)
        assert len(ax.collections) == len(methods)  # the bands, nothing else
        for line in means:
            method = line.get_gid().split(":")[1]
            for x, y in zip(line.get_xdata(), line.get_ydata()):
                key = (arch, dataset, BUDGET_LABEL, method, float(x))
                if key in accuracy:
                    assert y == pytest.approx(statistics.mean(accuracy[key]))
                else:  # a failed density breaks the mean line
                    assert np.isnan(y) and key in failed
        (dense,) = _by_gid(ax, "dense")
        assert dense.get_linestyle() == "--" and dense.get_color() in ("k", (0, 0, 0), "black")
        assert dense.get_ydata()[0] == pytest.approx(
            statistics.mean(accuracy[(arch, dataset, BUDGET_LABEL, "dense", 1.0)])
        )
        # Every config whose runs all failed: one X marker at chance, reached by a dashed line.
        lost = {
            k[3:] for k in failed if k[:3] == (arch, dataset, BUDGET_LABEL) and k not in accuracy
        }  # fmt: skip
        markers = _by_gid(ax, "failed:")
        drawn = {
            (m.get_gid().split(":")[1], float(x))
            for m in markers
            for x in m.get_xdata()
        }  # fmt: skip
        assert drawn == lost
        chance = chance_accuracy(dataset)
        for marker in markers:
            assert marker.get_linestyle() == "None" and marker.get_marker() == "X"
            assert list(marker.get_ydata()) == pytest.approx([chance] * len(marker.get_xdata()))
        dashed = _by_gid(ax, "failed-line:")
        assert {d.get_gid() for d in dashed} == {f"failed-line:{m}" for m, _ in lost}
        assert all(d.get_linestyle() == "--" for d in dashed)
        (chance_line,) = _by_gid(ax, "chance")
        assert chance_line.get_ydata()[0] == pytest.approx(chance)


def test_accuracy_figure_density_axis_in_percent(accuracy_figure: Figure) -> None:
    ax = _panel(accuracy_figure, "mlp on digits")
    ticks = list(ax.get_xticks())
    assert ticks == pytest.approx([0.001, 0.01, 0.1])
    labels = [ax.xaxis.get_major_formatter()(t) for t in ticks]
    assert labels == ["0.1%", "1%", "10%"]
    assert ax.yaxis.get_major_formatter()(0.5) == "50%"
    assert [format_density(d) for d in (0.1, 0.01, 0.001, 0.0001)] == [
        "10%", "1%", "0.1%", "0.01%",
    ]  # fmt: skip


def test_one_colour_per_method_in_every_figure(accuracy_figure: Figure) -> None:
    palette = method_palette(["zzz", "my_plugin", "epl"])
    assert palette["epl"] == method_palette([])["epl"]  # known methods: fixed colours
    assert len(set(palette.values())) == len(palette)
    colours: dict[str, set] = defaultdict(set)
    for ax in accuracy_figure.axes:
        for line in _by_gid(ax, "mean:"):
            colours[line.get_gid().split(":")[1]].add(tuple(line.get_color()))
    assert colours["snip"] == {method_palette([])["snip"]}  # the same in both panels
    labels = [t.get_text() for t in accuracy_figure.legends[0].get_texts()]
    assert labels == [
        "Sparse (EPL)", "my_plugin", "SNIP", "dense baseline",
        "all runs failed (at chance)", "chance (1 / classes)",
    ]  # fmt: skip


def test_layer_allocation_figure(engine: Engine) -> None:
    layers = storage.layer_allocation(engine, storage.RunFilter(archs=["mlp"]))
    figure = reports.layer_allocation_figure(layers)
    assert [ax.get_title() for ax in figure.axes] == ["Sparse (EPL)", "SNIP"]
    for ax, method in zip(figure.axes, ["epl", "snip"]):
        assert ax.get_yscale() == "log"
        rows = layers[layers["method"] == method]
        densities = sorted(set(rows["density"]), reverse=True)
        curves = _by_gid(ax, "kept:")
        assert [c.get_gid() for c in curves] == [f"kept:{d:g}" for d in densities]
        (size,) = _by_gid(ax, "size")
        assert list(size.get_ydata()) == list(LAYER_TOTALS)
        zeros = {m.get_gid(): list(m.get_xdata()) for m in _by_gid(ax, "zero:")}
        expected = {}
        for density in densities:
            kept = rows[rows["density"] == density].groupby("layer_index")["kept"].mean()
            if (kept == 0).any():
                expected[f"zero:{density:g}"] = list(kept.index[kept == 0])
            (curve,) = _by_gid(ax, f"kept:{density:g}")
            assert list(curve.get_ydata()) == pytest.approx(list(kept.where(kept > 0)), nan_ok=True)
        assert zeros == expected
    assert {m.get_gid() for m in _by_gid(figure.axes[0], "zero:")} == {"zero:0.01", "zero:0.001"}
    palette = density_palette(layers["density"])
    for ax in figure.axes:  # one colour per density, the same in every panel
        for curve in _by_gid(ax, "kept:"):
            assert tuple(curve.get_color()) == palette[float(curve.get_gid().split(":")[1])]


def test_spectra_figure(engine: Engine) -> None:
    spectra = storage.spectra(engine, storage.RunFilter(archs=["mlp"]))
    figure = reports.spectra_figure(spectra)
    (ax,) = figure.axes
    assert ax.get_title() == "Sparse (EPL)" and ax.get_yscale() == "log"
    curves = _by_gid(ax, "spectrum:")
    assert [c.get_gid() for c in curves] == ["spectrum:0.1", "spectrum:0.01"]
    assert list(curves[0].get_ydata()) == pytest.approx([0.4, 0.3, 0.2])  # mean over seeds
    assert all(np.isnan(curves[1].get_ydata()))  # identically zero: no curve ...
    (zeros,) = _by_gid(ax, "zero:")
    assert zeros.get_gid() == "zero:0.01" and list(zeros.get_xdata()) == [1, 2, 3]  # ... markers
    (dense,) = _by_gid(ax, "dense")
    assert list(dense.get_ydata()) == pytest.approx([3.1, 2.1, 1.1])


def test_figures_need_one_arch_and_data_set(engine: Engine) -> None:
    layers = storage.layer_allocation(engine)
    with pytest.raises(ValueError, match="one arch x data set x budget"):
        reports.layer_allocation_figure(pd.concat([layers, layers.assign(arch="other")]))
    with pytest.raises(ValueError, match="one arch x data set x budget"):
        reports.layer_allocation_figure(pd.concat([layers, layers.assign(budget="sgd")]))
    with pytest.raises(ValueError, match="'budget' column"):  # budgets are never mixed
        reports.layer_allocation_figure(layers.drop(columns="budget"))


# --- the report -------------------------------------------------------------------------------


def test_report_holds_every_table_and_figure(report_dir: Path) -> None:
    page = (report_dir / "index.html").read_text()
    images = re.findall(r'<img src="([^"]+)"', page)
    assert sorted(images) == [
        "accuracy_vs_density.png",  # every panel in one figure, and each in its own section
        f"accuracy_vs_density_mlp_digits_{SLUG}.png",
        f"accuracy_vs_density_small_cnn_cifar100_{SLUG}.png",
        f"layers_mlp_digits_{SLUG}.png",
        f"spectra_mlp_digits_{SLUG}.png",
    ]
    for name in images:
        assert (report_dir / name).stat().st_size > 1000
        svg = (report_dir / name.replace(".png", ".svg")).read_text()
        assert svg.lstrip().startswith("<?xml") and f'href="{name[:-4]}.svg"' in page
    for stem in ("accuracy", "cost", "failures"):
        for pair in ("mlp_digits", "small_cnn_cifar100"):
            for suffix in ("md", "csv", "tex"):
                assert f'href="{stem}_{pair}_{SLUG}.{suffix}"' in page
                assert (report_dir / f"{stem}_{pair}_{SLUG}.{suffix}").exists()
    # The query that made each, and the run counts.
    assert "storage.accuracy(engine, storage.RunFilter(archs=[&#x27;mlp&#x27;]" in page
    assert "storage.layer_allocation(engine, storage.RunFilter(archs=[&#x27;mlp&#x27;]" in page
    assert "storage.spectra(engine" in page and "storage.allocation_cost(engine" in page
    assert f"budgets=[&#x27;{BUDGET_LABEL}&#x27;]" in page  # every query is cut to its budget
    assert "9 finished runs, 4 failed runs" in page  # mlp on digits
    assert "n/a (zero gradient)" in page and "n/a (saliency all zero &amp; more)" in page
    assert "dataset.imagesStatus" in page  # the image check the browser test reads


def test_bench_report_command(
    engine: Engine, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    url = engine.url.render_as_string(hide_password=False)
    assert main(["report", "--db", url, "--out", str(tmp_path / "out")]) == 0
    assert (tmp_path / "out" / "index.html").exists()
    assert "index.html" in capsys.readouterr().out
    missing = f"sqlite:///{tmp_path / 'nope.db'}"
    assert main(["report", "--db", missing, "--out", str(tmp_path / "x")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_empty_database_gives_a_page(tmp_path: Path) -> None:
    engine = storage.open_db(f"sqlite:///{tmp_path / 'empty.db'}")
    page = reports.build_report(engine, tmp_path / "out").read_text()
    assert "0 runs in" in page and "<img" not in page


def test_render_keeps_the_query_formats() -> None:
    frame = pd.DataFrame({"a": [1]}, index=pd.Index(["x"], name="method"))
    assert "\\toprule" in reports.render(frame, "latex")
    assert pd.read_csv(io.StringIO(reports.render(frame, "csv")), index_col=0).equals(frame)


def test_each_method_line_has_its_own_marker(accuracy_figure: Figure) -> None:
    from reports.style import DEFAULT_MARKER, METHOD_MARKERS

    ax = _panel(accuracy_figure, "mlp on digits")
    for line in _by_gid(ax, "mean:"):
        method = line.get_gid().split(":")[1]
        assert line.get_marker() == METHOD_MARKERS.get(method, DEFAULT_MARKER)
    assert len(set(METHOD_MARKERS.values())) == len(METHOD_MARKERS)
    assert not {"X", "v"} & set(METHOD_MARKERS.values())  # kept for failures and zeros


def test_a_panel_of_failures_only_keeps_a_readable_y_axis() -> None:
    nan = float("nan")
    aggregated = pd.DataFrame(
        [
            ["fixup_resnet110", "cifar10", "sgd", method, 0.01, nan, nan, 0, nan, nan, 1, "zero"]
            for method in ("force", "synflow")
        ],
        columns=reports.tables.ACCURACY_COLUMNS,
    )
    figure = reports.accuracy_figure(aggregated)
    low, high = figure.axes[0].get_ylim()
    assert high - low >= 0.2 - 1e-9 and low >= 0.0
    labels = [t.get_text() for t in figure.axes[0].get_yticklabels()]
    assert len(set(labels)) == len(labels)  # no two ticks with the same percent


def test_report_with_claims_writes_them(engine: Engine, tmp_path: Path) -> None:
    page = reports.build_report(engine, tmp_path, claims=True).read_text()
    claims_md = (tmp_path / "claims.md").read_text()
    assert "claims, checked" in page and "Claim 1:" in page
    for number in range(1, 6):
        assert f"### Claim {number}" in claims_md
    assert "reports.claims.check_claims(engine)" in page
