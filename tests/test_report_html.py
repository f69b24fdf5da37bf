"""The report's index.html opened in headless Chromium (Debian's package): every image loads.

The page carries a small script that, once loaded, writes on <body> how many <img> it has and how
many decoded to a non-empty picture; Chromium's ``--dump-dom`` returns the DOM after it ran.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from known_rows import BUDGET_LABEL, fill_known_rows

import reports
import storage
from reports.style import budget_slug

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None,
    reason="no chromium on PATH: install Debian's package (apt-get install -y chromium; "
    ".ci/run does it) to open the report in a headless browser",
)


def _body_after_load(page: Path, profile: Path) -> dict[str, str]:
    """The data attributes of <body> once the page has loaded in headless Chromium."""
    assert CHROMIUM is not None
    command = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        f"--user-data-dir={profile}",
        "--virtual-time-budget=10000",
        "--dump-dom",
        page.as_uri(),
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    body = re.search(r"<body([^>]*)>", result.stdout)
    assert body, f"no <body> in Chromium's DOM (exit {result.returncode}): {result.stderr[-2000:]}"
    return dict(re.findall(r'data-([\w-]+)="([^"]*)"', body.group(1)))


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    engine = storage.open_db(f"sqlite:///{tmp_path_factory.mktemp('db') / 'known.db'}")
    fill_known_rows(engine)
    return reports.build_report(engine, tmp_path_factory.mktemp("report"))


def test_every_image_of_the_report_loads(report: Path, tmp_path: Path) -> None:
    images = re.findall(r"<img ", report.read_text())
    assert len(images) == 5  # accuracy versus density (all, and each data set), layers, spectra
    body = _body_after_load(report, tmp_path / "profile")
    assert body == {"images": "5", "images-loaded": "5", "images-status": "all-loaded"}


def test_a_missing_image_is_caught(report: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(report.parent, broken)
    (broken / f"layers_mlp_digits_{budget_slug(BUDGET_LABEL)}.png").unlink()
    body = _body_after_load(broken / "index.html", tmp_path / "profile")
    assert body == {"images": "5", "images-loaded": "4", "images-status": "missing"}
