"""Value checks every store runs before it writes anything.

The frame contract (``engine.data.frames``) fixes columns, dtypes and the UTC index; these checks add the
values a market can never produce: non-finite or non-positive prices, negative volume, a high under the low,
an open or close outside its bar's range, an ask under the bid, text where a number belongs. A batch with
any such row is refused whole with one ``DataQualityError`` naming the first bad rows, so a store never holds
half a batch and a caller (the ingestor) can set the bad rows aside with :func:`bar_problems` /
:func:`tick_problems` and write the rest.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from engine.data.frames import BAR_COLUMNS, TICK_COLUMNS, conform_bars, conform_ticks
from engine.errors import DataQualityError

# pandas loads in the functions that use it: config validation imports this module (--cfg job stays light).
if TYPE_CHECKING:
    import pandas as pd

SHOWN = 5  # bad rows quoted in a message; the count says how many there were in all


def _numeric(frame: pd.DataFrame, columns: tuple[str, ...], what: str) -> tuple[pd.DataFrame, dict[int, str]]:
    """Columns coerced to float64 and, by row position, which columns held text that is not a number."""
    import pandas as pd

    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise DataQualityError(f"{what} lack column(s) {missing}; expected {list(columns)}")
    out = frame.copy()
    text: dict[int, str] = {}
    for col in columns:
        raw = frame[col]
        if pd.api.types.is_numeric_dtype(raw) and not pd.api.types.is_bool_dtype(raw):
            out[col] = raw.astype("float64")
            continue
        coerced = pd.to_numeric(raw, errors="coerce").astype("float64")
        for pos in np.flatnonzero(raw.notna().to_numpy() & coerced.isna().to_numpy()):
            text[int(pos)] = (text[int(pos)] + "; " if int(pos) in text else "") + f"{col} is not a number"
        out[col] = coerced
    return out, text


def _reasons(checks: list[tuple[np.ndarray, str]]) -> dict[int, str]:
    """By row position, the reasons a row fails; rows that pass are absent (strings only for bad rows)."""
    masks = [np.asarray(mask, dtype=bool) for mask, _ in checks]
    bad = np.logical_or.reduce(masks)
    return {int(pos): "; ".join(why for mask, (_, why) in zip(masks, checks, strict=True) if mask[pos])
            for pos in np.flatnonzero(bad)}


def _finite_positive(frame: pd.DataFrame, cols: tuple[str, ...]) -> list[tuple[np.ndarray, str]]:
    checks = []
    for col in cols:
        values = frame[col].to_numpy("float64")
        checks.append((~np.isfinite(values), f"{col} is not finite"))
        with np.errstate(invalid="ignore"):
            checks.append((values <= 0, f"{col} <= 0"))
    return checks


def _volume(frame: pd.DataFrame) -> list[tuple[np.ndarray, str]]:
    vol = frame["volume"].to_numpy("float64")
    with np.errstate(invalid="ignore"):
        return [(~np.isfinite(vol), "volume is not finite"), (vol < 0, "volume < 0")]


def bar_problems(bars: pd.DataFrame) -> dict[int, str]:
    """By row position, why a bar's values are impossible (good bars are absent). Columns must be float64."""
    o, h, lo, c = (bars[k].to_numpy("float64") for k in ("open", "high", "low", "close"))
    with np.errstate(invalid="ignore"):
        checks = [*_finite_positive(bars, ("open", "high", "low", "close")), *_volume(bars),
                  (h < lo, "high < low"),
                  ((o < lo) | (o > h), "open outside [low, high]"),
                  ((c < lo) | (c > h), "close outside [low, high]")]
    return _reasons(checks)


def tick_problems(ticks: pd.DataFrame) -> dict[int, str]:
    """By row position, why a tick's values are impossible (good ticks are absent). Columns must be float64."""
    bid, ask = ticks["bid"].to_numpy("float64"), ticks["ask"].to_numpy("float64")
    with np.errstate(invalid="ignore"):
        checks = [*_finite_positive(ticks, ("bid", "ask")), *_volume(ticks), (ask < bid, "ask < bid")]
    return _reasons(checks)


def _raise_if_bad(frame: pd.DataFrame, reasons: dict[int, str], text: dict[int, str], what: str) -> None:
    # Text is reported under its own name rather than as the NaN it was coerced to.
    reasons = {**reasons, **text}
    if not reasons:
        return
    shown = []
    for pos in sorted(reasons)[:SHOWN]:
        values = ", ".join(f"{k}={v!r}" for k, v in zip(frame.columns, frame.iloc[pos].tolist(), strict=True))
        shown.append(f"row {pos} at {frame.index[pos].isoformat()}: {reasons[pos]} ({values})")
    raise DataQualityError(f"{len(reasons)} of {len(frame)} {what} hold impossible values; nothing of this "
                           "batch was written. First bad rows: " + " | ".join(shown))


def check_bars(bars: pd.DataFrame, *, what: str = "bars") -> pd.DataFrame:
    """The bars conformed (UTC index, float64 columns, sorted) or one ``DataQualityError`` for the batch.

    Values are checked in the caller's row order, so "row 3" in a message is the caller's fourth row."""
    numeric, text = _numeric(bars, BAR_COLUMNS, what)
    conformed = conform_bars(numeric, what=what)  # index problems (naive, duplicates) first: they are global
    _raise_if_bad(numeric.loc[:, list(BAR_COLUMNS)], bar_problems(numeric), text, what)
    return conformed


def check_ticks(ticks: pd.DataFrame, *, what: str = "ticks") -> pd.DataFrame:
    """The ticks conformed (UTC index, float64 columns, stably sorted) or one ``DataQualityError``."""
    numeric, text = _numeric(ticks, TICK_COLUMNS, what)
    conformed = conform_ticks(numeric, what=what)
    _raise_if_bad(numeric.loc[:, list(TICK_COLUMNS)], tick_problems(numeric), text, what)
    return conformed
