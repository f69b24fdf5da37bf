"""``bench methods`` starts in under a second once its listing is cached: the cached text is the
listing, a changed method file or plugin makes a new one, and the cached call imports no torch."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench import listing_cache
from bench.listing import methods_frame

CHECK = (
    "import sys, bench.cli; code = bench.cli.main(['methods']); "
    "print('torch' in sys.modules, file=sys.stderr); sys.exit(code)"
)


def _methods(cache: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, listing_cache.CACHE_ENV: str(cache)}
    return subprocess.run(
        [sys.executable, "-c", CHECK], env=env, capture_output=True, text=True, check=True
    )


def test_the_cached_listing_is_the_listing_and_needs_no_torch(tmp_path: Path) -> None:
    first, second = _methods(tmp_path), _methods(tmp_path)
    assert first.stdout == second.stdout == methods_frame().to_string(index=False) + "\n"
    assert first.stderr.strip() == "True", "the first call lists by importing the methods"
    assert second.stderr.strip() == "False", "the second reads the cache: no torch import"
    assert len(list(tmp_path.glob("methods-*.txt"))) == 1


def test_a_changed_method_file_makes_a_new_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = tmp_path / "methods"
    source.mkdir()
    module = source / "magnitude.py"
    module.write_text("x = 1\n")
    monkeypatch.setattr(listing_cache, "METHODS_SOURCE", source)
    before = listing_cache.source_key()
    assert listing_cache.source_key() == before
    module.write_text("x = 22\n")
    assert listing_cache.source_key() != before


def test_a_plugin_is_listed_without_the_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    from bench.cli import main

    monkeypatch.setenv(listing_cache.CACHE_ENV, str(tmp_path / "cache"))
    plugin = tmp_path / "plugin_method.py"
    plugin.write_text(
        "import methods\n\n\n@methods.register('cache_probe')\nclass Probe(methods.Method):\n"
        "    description = 'a probe'\n"
    )
    assert main(["methods", "--plugin", str(plugin)]) == 0
    assert "cache_probe" in capsys.readouterr().out
    assert not (tmp_path / "cache").exists()
    from methods import registry

    registry._REGISTRY.pop("cache_probe", None)
