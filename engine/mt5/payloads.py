"""Contract payloads -> validated, UTC-indexed DataFrames (pure: no I/O).

MT5 stamps times in broker server time; every function here takes the server offset and returns
UTC. Legacy bridges write bar times with a trailing ``Z``, and the quant-server Flask bridge as RFC 1123
(``Thu, 15 Feb 2024 00:00:00 GMT``), although they are server time; the zone is ignored on purpose
(docs/mt5_rest_api.md, "Times").
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from engine.errors import BadResponseError
from engine.mt5 import contract

# pandas loads in the functions that use it: config validation imports this module (--cfg job stays light).
if TYPE_CHECKING:
    import pandas as pd

_RFC_1123 = "%a, %d %b %Y %H:%M:%S GMT"
BAR_FRAME_COLUMNS = ("open", "high", "low", "close", "tick_volume", "spread", "real_volume")
TICK_FRAME_COLUMNS = ("bid", "ask", "last", "volume")


def _records(payload: Any, what: str) -> list[dict[str, Any]]:
    if not isinstance(payload, list) or not all(isinstance(r, dict) for r in payload):
        raise BadResponseError(f"{what}: expected a JSON list of objects, got {type(payload).__name__}")
    return payload


def server_times_to_utc(values: Sequence[Any] | pd.Series, offset: pd.Timedelta, what: str,
                        unit: str = "s") -> pd.DatetimeIndex:
    """Server-time stamps (ISO strings or epoch numbers in ``unit``) as a UTC DatetimeIndex."""
    import pandas as pd

    series = pd.Series(values)
    try:
        if series.empty:
            naive = pd.DatetimeIndex([], dtype="datetime64[ns]")
        elif pd.api.types.is_numeric_dtype(series.dtype):
            naive = pd.DatetimeIndex(pd.to_datetime(series.to_numpy(), unit=unit))
        else:
            text = series.astype(str)
            # Flask's JSON writes datetimes as RFC 1123 ("Thu, 15 Feb 2024 00:00:00 GMT").
            rfc = text.iloc[0].endswith("GMT") and text.iloc[0][:3].isalpha()
            parsed = pd.to_datetime(text, format=_RFC_1123 if rfc else "ISO8601", utc=True)
            naive = pd.DatetimeIndex(parsed).tz_localize(None)
    except (ValueError, TypeError, OverflowError) as exc:
        raise BadResponseError(f"{what}: unreadable time values ({exc}); expected ISO 8601 or epoch seconds") \
            from None
    return (naive - offset).tz_localize("UTC").as_unit("us")


def _numeric(frame: pd.DataFrame, columns: Sequence[str], what: str) -> None:
    import pandas as pd

    for col in columns:
        try:
            values = pd.to_numeric(frame[col], errors="raise")
        except (ValueError, TypeError):
            raise BadResponseError(f"{what}: field {col!r} holds non-numeric values") from None
        if values.isna().any():
            raise BadResponseError(f"{what}: field {col!r} is missing in {int(values.isna().sum())} record(s)")
        frame[col] = values


def _columns(records: list[dict[str, Any]], names: Sequence[str], what: str) -> dict[str, list[Any]]:
    try:
        return {n: [r[n] for r in records] for n in names}
    except KeyError as exc:
        raise BadResponseError(f"{what}: a record lacks {exc.args[0]!r}; each needs {list(names)}") from None
    except TypeError:
        raise BadResponseError(f"{what}: expected a JSON list of objects") from None


def _floats(values: list[Any], name: str, what: str) -> np.ndarray:
    try:
        out = np.asarray(values, dtype="float64")
    except (ValueError, TypeError):
        raise BadResponseError(f"{what}: field {name!r} holds non-numeric values") from None
    if not np.isfinite(out).all():
        raise BadResponseError(f"{what}: field {name!r} holds missing or non-finite values")
    return out


def bars_frame(payload: Any, offset: pd.Timedelta, what: str = "bars") -> pd.DataFrame:
    """Bar records -> frame indexed by UTC bar open time with open..real_volume."""
    import pandas as pd

    if not isinstance(payload, list):
        raise BadResponseError(f"{what}: expected a JSON list of bars, got {type(payload).__name__}")
    cols = _columns(payload, ("time", "open", "high", "low", "close"), what)
    data: dict[str, np.ndarray] = {k: _floats(cols[k], k, what) for k in ("open", "high", "low", "close")}
    for name, dtype in (("tick_volume", "int64"), ("spread", "int64"), ("real_volume", "float64")):
        # Legacy bridges may omit these; they carry no price information.
        values = [r.get(name) for r in payload]
        try:
            data[name] = np.asarray(values, dtype=dtype)
        except (ValueError, TypeError):
            raw = pd.to_numeric(pd.Series(values, dtype=object), errors="coerce")
            data[name] = raw.fillna(0).to_numpy(dtype)
    index = server_times_to_utc(cols["time"], offset, what)
    out = pd.DataFrame(data, index=pd.DatetimeIndex(index, name="timestamp"))
    if not out.index.is_monotonic_increasing:
        out = out.sort_index(kind="stable")
    if out.index.has_duplicates:
        raise BadResponseError(f"{what}: the server sent two bars with the same time "
                               f"({out.index[out.index.duplicated()][0].isoformat()})")
    return out


def ticks_frame(payload: Any, offset: pd.Timedelta, what: str = "ticks") -> pd.DataFrame:
    """Tick records -> frame indexed by UTC tick time (ms) with bid, ask, last, volume.

    Exact duplicates (same time_msc and values: a bridge re-sending a tick) are dropped; distinct ticks
    within one millisecond are kept.
    """
    import pandas as pd

    records = _records(payload, what)
    cols = list(contract.TICK_FIELDS)
    frame = pd.DataFrame.from_records(records, columns=cols) if records else pd.DataFrame(columns=cols)
    _numeric(frame, ("bid", "ask"), what)
    for col in ("last", "volume"):
        frame[col] = pd.to_numeric(frame[col], errors="coerce").fillna(0.0)
    if records and frame["time_msc"].notna().all():
        _numeric(frame, ("time_msc",), what)
        index = server_times_to_utc(frame["time_msc"].astype("int64"), offset, what, unit="ms")
    else:
        index = server_times_to_utc(frame["time"], offset, what)
    out = pd.DataFrame({col: frame[col].to_numpy("float64") for col in TICK_FRAME_COLUMNS},
                       index=pd.DatetimeIndex(index, name="timestamp"))
    dup = out.reset_index().duplicated().to_numpy()
    out = out.loc[~dup]
    if not out.index.is_monotonic_increasing:
        out = out.sort_index(kind="stable")
    return out


def records_frame(payload: Any, fields: Sequence[str], offset: pd.Timedelta, time_fields: Sequence[str],
                  what: str) -> pd.DataFrame:
    """Positions, orders or deals as a frame with ``fields``; time fields converted to UTC Timestamps."""
    import pandas as pd

    records = _records(payload, what)
    for i, rec in enumerate(records):
        missing = [f for f in fields if f not in rec]
        if missing:
            raise BadResponseError(f"{what}: record {i} lacks {missing}")
    frame = pd.DataFrame.from_records(records, columns=list(fields)) if records else \
        pd.DataFrame(columns=list(fields))
    for col in time_fields:
        if col in frame:
            frame[col] = server_times_to_utc(frame[col].tolist(), offset, what) if records else \
                pd.Series([], dtype="datetime64[ns, UTC]")
    return frame


def require_fields(payload: Any, fields: Sequence[str], what: str) -> dict[str, Any]:
    if not isinstance(payload, dict):
        raise BadResponseError(f"{what}: expected a JSON object, got {type(payload).__name__}")
    missing = [f for f in fields if f not in payload]
    if missing:
        raise BadResponseError(f"{what}: the answer lacks {missing}; is the bridge speaking docs/mt5_rest_api.md?")
    return payload
