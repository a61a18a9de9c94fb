"""PostgreSQL's binary COPY format, built and read with numpy in one pass.

Text COPY spends most of its time formatting floats on the client (``%.17g`` for exactness) and parsing them
again on the server; the binary format ships the IEEE bytes as they are. Every row of a batch has the same
width (one symbol per batch, fixed-width numbers), so a row is one record of a numpy structured dtype and a
million rows encode in a few milliseconds. Reads use the same trick for all-fixed-width result sets.

Format: signature, flags and header-extension length; then per row an int16 field count and, per field, an
int32 byte length followed by the value in network byte order; then an int16 -1 trailer. ``timestamptz`` is
int64 microseconds since 2000-01-01 UTC.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

SIGNATURE = b"PGCOPY\n\xff\r\n\x00"
HEADER = SIGNATURE + np.array([0, 0], dtype=">i4").tobytes()
TRAILER = np.array([-1], dtype=">i2").tobytes()
PG_EPOCH_US = 946_684_800_000_000  # 2000-01-01T00:00:00Z in Unix microseconds


@dataclass(frozen=True)
class Column:
    """One COPY field: ``kind`` is ``text`` (a constant for the batch), ``timestamptz`` or ``float8``."""

    kind: str
    values: object  # str for text; a DatetimeIndex/array of datetime64 for timestamptz; float array for float8


def _field_dtype(col: Column) -> str:
    if col.kind == "text":
        return f"S{len(str(col.values).encode())}"
    if col.kind == "timestamptz":
        return ">i8"
    if col.kind == "float8":
        return ">f8"
    raise ValueError(f"unsupported COPY column kind {col.kind!r}")


def _micros(values: object) -> np.ndarray:
    stamps = pd.DatetimeIndex(values)
    stamps = stamps.tz_convert("UTC") if stamps.tz is not None else stamps.tz_localize("UTC")
    return stamps.as_unit("us").asi8 - PG_EPOCH_US


def encode(columns: Sequence[Column], rows: int) -> io.BytesIO:
    """A binary COPY stream of ``rows`` rows with ``columns`` in order (no NULLs: values are validated)."""
    fields: list[tuple[str, str]] = [("n", ">i2")]
    for i, col in enumerate(columns):
        fields += [(f"len{i}", ">i4"), (f"val{i}", _field_dtype(col))]
    records = np.empty(rows, dtype=np.dtype(fields))  # packed: numpy adds no padding unless asked
    records["n"] = len(columns)
    for i, col in enumerate(columns):
        dtype = records.dtype[f"val{i}"]
        records[f"len{i}"] = dtype.itemsize
        if col.kind == "text":
            records[f"val{i}"] = str(col.values).encode()
        elif col.kind == "timestamptz":
            records[f"val{i}"] = _micros(col.values)
        else:
            records[f"val{i}"] = np.asarray(col.values, dtype="float64")
    return io.BytesIO(b"".join((HEADER, records.tobytes(), TRAILER)))


def decode(data: bytes, kinds: Sequence[str]) -> dict[str, np.ndarray]:
    """Columns ``c0, c1, ...`` of a binary COPY result whose fields are all ``timestamptz``/``float8``/``int8``.

    Timestamps come back as ``datetime64[us]`` (UTC); numbers as float64 / int64."""
    if not data.startswith(SIGNATURE):
        raise ValueError("not a binary COPY stream")
    ext = int(np.frombuffer(data, dtype=">i4", count=1, offset=len(SIGNATURE) + 4)[0])
    body = memoryview(data)[len(SIGNATURE) + 8 + ext: len(data) - len(TRAILER)]
    wire = {"timestamptz": ">i8", "float8": ">f8", "int8": ">i8"}
    fields: list[tuple[str, str]] = [("n", ">i2")]
    for i, kind in enumerate(kinds):
        fields += [(f"len{i}", ">i4"), (f"c{i}", wire[kind])]
    records = np.frombuffer(body, dtype=np.dtype(fields))
    if len(records) and (records["n"] != len(kinds)).any():
        raise ValueError("binary COPY stream has rows of another width")
    for i in range(len(kinds)):
        if len(records) and (records[f"len{i}"] < 0).any():
            raise ValueError(f"column {i} holds NULL; decode() reads NOT NULL fixed-width columns only")
    out: dict[str, np.ndarray] = {}
    for i, kind in enumerate(kinds):
        raw = records[f"c{i}"]
        if kind == "timestamptz":
            out[f"c{i}"] = (raw.astype("int64") + PG_EPOCH_US).astype("datetime64[us]")
        elif kind == "float8":
            out[f"c{i}"] = raw.astype("float64")
        else:
            out[f"c{i}"] = raw.astype("int64")
    return out
