"""What ``bench query`` prints: accuracies in percent and numbers rounded to what was measured.

Storage frames keep fractions and full floats (reports compute with them); a person reading a
query sees percentages, as in every table, and no float noise such as ``0.10000000149011612``
(a float32 accuracy).
"""

from __future__ import annotations

import math

import pandas as pd

# Columns that hold an accuracy (a fraction in storage), in every query that has them.
ACCURACY_COLUMNS = ("test_acc", "best_val_acc", "val_acc", "mean", "std", "min", "max")
PERCENT_DECIMALS = 2  # accuracies are counts over at most 10,000 test images
SIGNIFICANT = 6  # other floats: float32 measurements carry about seven digits


def _significant(value: float) -> float:
    if value is None or not math.isfinite(value) or value == 0:
        return value
    return float(f"{value:.{SIGNIFICANT}g}")


def present(frame: pd.DataFrame, what: str) -> pd.DataFrame:
    """``frame`` of query ``what`` as shown: accuracy columns in percent (``_%`` appended to
    their names), other floats to six significant digits."""
    frame = frame.copy()
    percent = [c for c in ACCURACY_COLUMNS if c in frame.columns]
    if what == "budgets":
        percent = []
    for column in frame.columns:
        if column in percent:
            frame[column] = (100 * pd.to_numeric(frame[column])).round(PERCENT_DECIMALS)
        elif pd.api.types.is_float_dtype(frame[column]):
            frame[column] = frame[column].map(_significant)
    return frame.rename(columns={c: f"{c}_%" for c in percent})
