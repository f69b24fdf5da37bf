"""Results you can cite: a report keeps training budgets apart (one section each, never one
averaged cell), says which code versions made it and warns where one series mixes them, gives
claim 3 a section per method, shows configs whose runs all failed as n/a (reason) and puts
failures at the chance level of the class count the runs recorded."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pandas as pd
import pytest
from known_rows import Row, fill_known_rows, provenance
from sqlalchemy import Engine

import reports
import storage
from bench.cli import main
from reports.curves import chance_by_dataset
from reports.provenance import mixed_versions, versions_table
from reports.style import budget_slug

SHORT = {"preset": "adam", "epochs": 10, "train_subset": 5000}
LONG = {"preset": "adam", "epochs": 20, "train_subset": 5000}
SHORT_LABEL, LONG_LABEL = "adam, 10 epochs, 5,000 images", "adam, 20 epochs, 5,000 images"
OLD, NEW = "a" * 40, "b" * 40  # two git commits


def budget_rows() -> list[Row]:
    """mlp on digits in two budgets (epl at 0.1 in both, from two commits in the short one),
    an all-failed SNIP config, FORCE and Iter-SNIP for claim 3, and a plugin data set whose
    runs recorded 4 classes."""
    mlp, old, new = ("mlp", "digits"), provenance(OLD), provenance(NEW, git_dirty=True)
    return [
        Row(*mlp, "dense", 1.0, 0, 0.90, budget=SHORT, provenance=old),
        Row(*mlp, "epl", 0.1, 0, 0.80, budget=SHORT, provenance=old),
        Row(*mlp, "epl", 0.1, 1, 0.84, budget=SHORT, provenance=new),
        Row(*mlp, "snip", 0.01, 0, None, "saliency all zero", budget=SHORT, provenance=old),
        Row(*mlp, "snip", 0.01, 1, None, "saliency all zero", budget=SHORT, provenance=old),
        Row(*mlp, "force", 0.0001, 0, None, "FORCE: all zero", budget=SHORT, provenance=old),
        Row(*mlp, "itersnip", 0.1, 0, 0.7, budget=SHORT, provenance=old),
        Row(*mlp, "dense", 1.0, 0, 0.95, budget=LONG, provenance=new),
        Row(*mlp, "epl", 0.1, 0, 0.60, budget=LONG, provenance=new),
        Row(*mlp, "epl", 0.1, 1, 0.62, budget=LONG, provenance=new),
        Row("mlp", "four-set", "epl", 0.01, 0, None, "loss is nan", budget=SHORT,
            provenance=provenance(OLD, num_classes=4)),
        Row("mlp", "four-set", "epl", 0.1, 0, 0.5, budget=SHORT,
            provenance=provenance(OLD, num_classes=4)),
    ]  # fmt: skip


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Engine:
    engine = storage.open_db(f"sqlite:///{tmp_path_factory.mktemp('db') / 'budgets.db'}")
    fill_known_rows(engine, budget_rows())
    return engine


@pytest.fixture(scope="module")
def report_dir(engine: Engine, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("report")
    reports.build_report(engine, out, claims=True)
    return out


@pytest.fixture(scope="module")
def page(report_dir: Path) -> str:
    return (report_dir / "index.html").read_text()


def _sections(page: str) -> dict[str, str]:
    """The HTML of each budget section (an <h3> under an arch x data set <h2>), by title, with
    its arch x data set: ``{"mlp on digits / adam, 10 epochs, 5,000 images": html}``."""
    out, group = {}, ""
    parts = re.split(r'(<h[23] id="[gs]\d+">[^<]*</h[23]>)', page)
    for heading, body in zip(parts[1::2], parts[2::2]):
        level, title = heading[2], re.sub(r"<[^>]+>", "", heading)
        if level == "2" and heading.startswith('<h2 id="g'):
            group = title
        elif level == "3":
            out[f"{group} / {title}".replace("&#x27;", "'")] = body
    return out


# --- budgets -----------------------------------------------------------------------------------


def test_two_budgets_of_one_config_are_two_tables_never_one_cell(engine: Engine) -> None:
    aggregated = storage.accuracy(engine)
    epl = aggregated[(aggregated["method"] == "epl") & (aggregated["arch"] == "mlp")]
    epl = epl[epl["dataset"] == "digits"].set_index("budget")
    assert epl.loc[SHORT_LABEL, "n"] == 2 and epl.loc[LONG_LABEL, "n"] == 2
    tables = reports.accuracy_table(aggregated)
    short = tables[("mlp", "digits", SHORT_LABEL)]
    long = tables[("mlp", "digits", LONG_LABEL)]
    # Each budget: its own mean over its own seeds, and its own dense baseline for the delta.
    assert short.loc["epl", "0.1"] == "82.00 ± 2.83 (2) Δ -8.00"
    assert long.loc["epl", "0.1"] == "61.00 ± 1.41 (2) Δ -34.00"
    cells = [c for t in tables.values() for c in t.to_numpy().ravel()]
    assert not [c for c in cells if "(4)" in c or "(3)" in c]  # never the two budgets at once


def test_two_budgets_are_two_sections_of_the_report(report_dir: Path, page: str) -> None:
    sections = _sections(page)
    assert f"mlp on digits / {SHORT_LABEL}" in sections
    assert f"mlp on digits / {LONG_LABEL}" in sections
    assert page.count('<h2 id="g') == 2  # mlp on digits, mlp on four-set: one heading each
    long = sections[f"mlp on digits / {LONG_LABEL}"]
    assert "61.00 ± 1.41 (2) Δ -34.00" in long and "82.00" not in long
    for label in (SHORT_LABEL, LONG_LABEL):
        slug = budget_slug(label)
        for stem in ("accuracy_mlp_digits", "accuracy_vs_density_mlp_digits"):
            name = f"{stem}_{slug}.{'csv' if stem == 'accuracy_mlp_digits' else 'png'}"
            assert (report_dir / name).exists() and f'href="{name}"' in page
    assert "Training budgets present: " in page and SHORT_LABEL in page and LONG_LABEL in page
    assert "Mixed training budgets" not in page


def test_figure_panels_are_per_budget(engine: Engine) -> None:
    figure = reports.accuracy_figure(storage.accuracy(engine, storage.RunFilter(archs=["mlp"])))
    titles = sorted(ax.get_title() for ax in figure.axes)
    assert titles == [
        f"mlp on digits\n{SHORT_LABEL}", f"mlp on digits\n{LONG_LABEL}",
        f"mlp on four-set\n{SHORT_LABEL}",
    ]  # fmt: skip


def test_budget_slugs_are_file_names() -> None:
    assert budget_slug(SHORT_LABEL) == "adam-10-epochs-5000-images"
    assert budget_slug("sgd, 2 epochs, all images, batch 64, bf16-mixed") == (
        "sgd-2-epochs-all-images-batch-64-bf16-mixed"
    )
    assert budget_slug(None) == "budget-not-recorded"


def test_hand_built_frames_without_a_budget_are_refused() -> None:
    frame = pd.DataFrame(
        [["mlp", "digits", "epl", 0.1, 0.8, 0.0, 1]],
        columns=["arch", "dataset", "method", "density", "mean", "std", "n"],
    )
    with pytest.raises(ValueError, match="never be averaged together"):
        reports.accuracy_table(frame)
    tables = reports.accuracy_table(frame.assign(budget="b"))
    assert tables[("mlp", "digits", "b")].loc["epl", "0.1"] == "80.00 ± 0.00 (1)"


# --- failures ----------------------------------------------------------------------------------


def test_an_all_failed_config_is_n_a_with_its_reason(engine: Engine, page: str) -> None:
    aggregated = storage.accuracy(engine)
    (row,) = aggregated[aggregated["method"] == "snip"].itertuples()
    assert (row.n, row.failed, row.reason) == (0, 2, "saliency all zero")
    table = reports.accuracy_table(aggregated)[("mlp", "digits", SHORT_LABEL)]
    assert table.loc["snip", "0.01"] == "n/a (saliency all zero)"
    assert "n/a (saliency all zero)" in _sections(page)[f"mlp on digits / {SHORT_LABEL}"]
    lost = reports.lost_configs(aggregated)
    assert sorted(lost["method"]) == ["epl", "force", "snip"]


def test_tables_agree_with_bench_query_accuracy(
    engine: Engine, capsys: pytest.CaptureFixture
) -> None:
    url = engine.url.render_as_string(hide_password=False)
    assert main(["query", "accuracy", "--db", url, "--format", "csv", "--method", "snip"]) == 0
    printed = pd.read_csv(io.StringIO(capsys.readouterr().out))
    assert printed[["budget", "n", "failed", "reason"]].to_numpy().tolist() == [
        [SHORT_LABEL, 0, 2, "saliency all zero"]
    ]


def test_failures_sit_at_the_recorded_chance_level(engine: Engine, page: str) -> None:
    runs = storage.runs(engine)
    chance = chance_by_dataset(runs)
    assert chance == {"digits": 0.1, "four-set": 0.25}  # four-set is no built-in: 10 otherwise
    aggregated = storage.accuracy(engine, storage.RunFilter(datasets=["four-set"]))
    figure = reports.accuracy_figure(aggregated, chance=chance)
    (marker,) = [line for line in figure.axes[0].lines if line.get_gid() == "failed:epl"]
    assert list(marker.get_ydata()) == [0.25]
    assert "drawn at chance accuracy (25%" in _sections(page)[f"mlp on four-set / {SHORT_LABEL}"]


# --- provenance --------------------------------------------------------------------------------


def test_the_report_names_the_versions_it_is_made_of(engine: Engine, page: str) -> None:
    table = versions_table(storage.runs(engine))
    assert sorted(table.index) == [("0.4.0", "aaaaaaaaaaaa"), ("0.4.0", "bbbbbbbbbbbb (dirty)")]
    assert table["runs"].sum() == len(budget_rows())
    assert set(table["torch"]) == {"2.4.1"} and set(table["CUDA"]) == {"none"}
    assert "What the results are made of" in page
    assert "paibench 0.4.0 (git commits aaaaaaaaaaaa, bbbbbbbbbbbb (dirty))" in page
    assert "torch 2.4.1" in page and "devices cpu" in page


def test_a_series_mixing_two_git_commits_is_warned_about(engine: Engine, page: str) -> None:
    mixed = mixed_versions(storage.runs(engine))
    assert mixed[["arch", "dataset", "budget", "method", "runs"]].to_numpy().tolist() == [
        ["mlp", "digits", SHORT_LABEL, "epl", 2]
    ]
    assert mixed["code versions"][0] == (
        "paibench 0.4.0 at aaaaaaaaaaaa (1 run); paibench 0.4.0 at bbbbbbbbbbbb (1 run)"
    )
    warning = "Warning: series made by different code versions"
    sections = _sections(page)
    assert warning in sections[f"mlp on digits / {SHORT_LABEL}"]
    assert warning not in sections[f"mlp on digits / {LONG_LABEL}"]  # one commit throughout
    assert page.count(warning) == 2  # the summary at the top, and the series' own section


def test_runs_without_provenance_read_as_not_recorded() -> None:
    runs = pd.DataFrame(
        {"arch": ["mlp"] * 2, "dataset": ["digits"] * 2, "budget": ["b"] * 2,
         "method": ["epl"] * 2, "paibench_version": [None, "0.4.0"], "git_commit": [None, OLD]}
    )  # fmt: skip
    assert mixed_versions(runs)["code versions"][0] == (
        "not recorded (1 run); paibench 0.4.0 at aaaaaaaaaaaa (1 run)"
    )
    assert mixed_versions(runs.iloc[:1]).empty and mixed_versions(runs.iloc[:0]).empty
    assert list(versions_table(runs.iloc[:1]).index) == [("not recorded", "not recorded")]


# --- claims ------------------------------------------------------------------------------------


def test_claim_3_has_one_section_per_method(report_dir: Path, page: str) -> None:
    titles = re.findall(r"<h3>(Claim 3[^<]*)</h3>", page)
    assert [t.split(":")[0] for t in titles] == ["Claim 3 (FORCE)", "Claim 3 (Iter-SNIP)"]
    claims = re.findall(r"<h3>(Claim [^<]*)</h3>", page)
    assert len({t.split(":")[0] for t in claims}) == len(claims) == 6  # one heading each
    markdown = (report_dir / "claims.md").read_text()
    assert re.findall(r"^### (Claim 3 \([^)]*\))", markdown, re.M) == [
        "Claim 3 (FORCE)",
        "Claim 3 (Iter-SNIP)",
    ]
    assert f"mlp on digits ({SHORT_LABEL}): 1 of 1 runs failed, at densities 0.0001" in markdown
