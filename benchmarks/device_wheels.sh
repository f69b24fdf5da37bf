#!/usr/bin/env bash
# Prepare what benchmarks/device_check.sh carries to the GPU machine (run here, with PyPI reachable):
#   .whl/                 wheels of the packages paibench needs that the GPU machine lacks
#   .data/fashion-mnist/  the four IDX files of Debian's dataset-fashion-mnist
# Both folders are git-ignored; the device tool carries them with `carry: [".whl", ".data"]`.
#
# The GPU machine has Python 3.12 with torch, torchvision, Lightning (and with it tqdm, PyYAML,
# packaging, typing_extensions), torchmetrics, pandas, seaborn, scikit-learn (numpy, scipy) and
# Jinja2's MarkupSafe, but no SQLAlchemy, Alembic or Optuna, and no internet. What is missing,
# with each wheel's own Requires-Dist checked (printed below): SQLAlchemy (typing-extensions;
# greenlet only for its asyncio extra, not used), Alembic (SQLAlchemy, Mako, typing-extensions
# >= 4.12, newer than torch asks for, so carried too), Mako (MarkupSafe), Optuna (alembic,
# colorlog, numpy, packaging, sqlalchemy, tqdm, PyYAML), colorlog, tabulate (pandas' Markdown).
# Versions are the ones this project's tests run with here.
#
#     bash benchmarks/device_wheels.sh          # idempotent: fills .whl and .data
set -euo pipefail
cd "$(dirname "$0")/.."

WHEELS=(
    SQLAlchemy==2.1.9
    alembic==1.20.1
    Mako==1.4.3
    optuna==5.0.0
    colorlog==6.12.0
    tabulate==0.10.0
    typing_extensions==4.15.0
)

mkdir -p .whl
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 -d .whl "${WHEELS[@]}"

echo "wheels in .whl (runtime Requires-Dist, extras left out):"
for wheel in .whl/*.whl; do
    echo "  $(basename "$wheel") ($(du -k "$wheel" | cut -f1) KiB)"
    unzip -p "$wheel" '*.dist-info/METADATA' | grep '^Requires-Dist' | grep -v 'extra ==' \
        | sed 's/^Requires-Dist: /      needs /' || true
done
echo "total: $(du -ch .whl/*.whl | tail -1 | cut -f1)"

mkdir -p .data/fashion-mnist
if ! dpkg -L dataset-fashion-mnist >/dev/null 2>&1; then
    echo "Debian's dataset-fashion-mnist is not installed: apt-get install dataset-fashion-mnist" >&2
    exit 1
fi
dpkg -L dataset-fashion-mnist | grep -E 'idx[13]-ubyte(\.gz)?$' | while read -r file; do
    cp -u "$file" .data/fashion-mnist/
done
echo "Fashion-MNIST in .data/fashion-mnist: $(ls .data/fashion-mnist | tr '\n' ' ')"
echo "($(du -sh .data | cut -f1))"
