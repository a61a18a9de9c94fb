"""MT5RestClient: MetaTrader 5 over the REST contract (docs/mt5_rest_api.md) from any OS.

The client reads (account, symbols, bars, ticks, positions, orders, history) and posts orders raw: one
request per call, never resent, never reconciled (engine.mt5.client_orders). The exactly-once order logic
(Idempotency-Key, reconciliation by magic+comment, lost and garbled answers) is
engine.trading.execution's, over the Broker protocol this client satisfies. Transport (timeouts, hard
deadlines, typed errors, GET retries) is engine.mt5.transport. It speaks this contract and the
quant-server Flask bridge's dialect (engine.mt5.dialect), detected from ``/health`` unless configured.
Bars and ticks come back as UTC-indexed DataFrames; broker server time is converted with a configured
offset or one measured against the server's latest tick.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

from engine.data.frames import conform_bars, to_utc
from engine.errors import BadResponseError, ConfigError, InvalidRequestError, OperationalError
from engine.mt5 import contract, payloads
from engine.mt5.client_orders import OrderRoutes
from engine.mt5.dialect import DIALECTS, ENGINE, QUANT_SERVER, detect, missing_route
from engine.mt5.retry import RetryPolicy
from engine.redact import MASK

if TYPE_CHECKING:
    import pandas as pd
    import requests

log = logging.getLogger("engine.mt5.client")

_LOOPBACK = {"127.0.0.1", "localhost", "::1"}
_DIALECTS, _QUANT = DIALECTS, QUANT_SERVER
# Offsets are measured to the nearest quarter hour: brokers use whole or half/quarter-hour zones,
# and the latest tick may be seconds or minutes old.
_OFFSET_QUANTUM_MINUTES = 15
SPEC_MAX_AGE_S = 60.0  # how long symbol_spec trusts a symbol's contract before reading it again


class MT5RestClient(OrderRoutes):
    """A client for one MT5 REST endpoint (the bridge on the terminal's host, the simulator, or an
    unmodified quant-server Flask bridge).

    ``server_time_offset_hours``: broker server time minus UTC; None measures it once from the latest
    tick. ``max_bars``: the most bars one request may ask for (the terminal's "Max bars in chart" or
    the bridge's cap); longer ranges are fetched in chunks. ``order_retries``: how often the execution
    layer may resend an order after reconciling. ``deadline``: seconds any one request may take with its
    retries, whatever the server does. ``dialect``: "engine" or "quant_server"; None detects it from
    ``/health``. Plain http:// is refused for a non-loopback host unless ``allow_insecure_http``.
    ``session`` may be injected (e.g. with a custom adapter); the client closes only a session it created.
    """

    def __init__(self, base_url: str, api_key: str, *, connect_timeout: float = 3.0, read_timeout: float = 30.0,
                 deadline: float = 60.0, retries: int = 3, backoff_base: float = 0.2, backoff_cap: float = 5.0,
                 jitter: float = 1.0, max_retry_after: float = 30.0, order_retries: int = 2,
                 server_time_offset_hours: float | None = None, max_bars: int = contract.DEFAULT_MAX_BARS,
                 max_response_bytes: int = 256 * 1024 * 1024, verify_tls: bool = True, ca_bundle: str | None = None,
                 allow_insecure_http: bool = False, dialect: str | None = None,
                 session: requests.Session | None = None, seed: int | None = None,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        parts = urlsplit(str(base_url))
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError("connector.base_url", f"{base_url!r} is not an http(s) URL; e.g. "
                                                    "https://mt5-bridge.example:8443")
        if dialect not in (None, *_DIALECTS):
            raise ConfigError("connector.dialect", f"{dialect!r}: use one of {list(_DIALECTS)} or null (detect)")
        if not isinstance(api_key, str) or (not api_key and dialect != _QUANT):
            raise ConfigError("connector.api_key", "empty API key; set the secret mt5_api_key "
                                                   "(python -m engine.secrets) or use connector=simulator")
        if min(connect_timeout, read_timeout, deadline) <= 0:
            raise ConfigError("connector.timeouts", "connect_timeout, read_timeout and deadline must be > 0 seconds")
        if max_bars < 1 or order_retries < 0 or max_response_bytes < 1:
            raise ConfigError("connector.max_bars", "max_bars and max_response_bytes must be >= 1 and "
                                                    "order_retries >= 0")
        if parts.scheme == "http" and parts.hostname not in _LOOPBACK and not allow_insecure_http:
            raise ConfigError("connector.base_url", f"plain http to {parts.hostname} would send the API key and "
                                                    "orders unencrypted; use https (python -m engine.mt5.bridge "
                                                    "--certfile ...), or set connector.allow_insecure_http=true "
                                                    "on a network you trust")
        # pandas and requests (with the transport) load here, not with this module: validating a config
        # resolves connector targets, and that must stay light.
        import pandas as pd

        from engine.mt5.transport import HttpTransport

        self.base_url = str(base_url).rstrip("/")
        policy = RetryPolicy(retries=retries, base=backoff_base, cap=backoff_cap, jitter=jitter,
                             max_retry_after=max_retry_after)
        self.transport = HttpTransport(self.base_url, api_key, timeout=(float(connect_timeout), float(read_timeout)),
                                       policy=policy, verify=ca_bundle if ca_bundle else bool(verify_tls),
                                       session=session, seed=seed, sleep=sleep, deadline=deadline,
                                       max_response_bytes=max_response_bytes)
        self.order_retries = order_retries
        self.max_bars = int(max_bars)
        self._dialect = dialect
        self._offset = None if server_time_offset_hours is None else pd.Timedelta(hours=server_time_offset_hours)
        super().__init__()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(base_url={self.base_url!r}, api_key={MASK!r})"

    def close(self) -> None:
        self.transport.close()

    @property
    def dialect(self) -> str:
        """"engine" or "quant_server": as configured, else detected once from ``/health``."""
        if self._dialect is None:
            try:
                found = detect(self.transport.get("/health"))
            except (BadResponseError, InvalidRequestError) as exc:
                # No readable /health: this contract's reads accept either dialect's answers.
                log.warning("MT5 REST dialect of %s not detected (%s); assuming engine", self.base_url, exc)
                found = ENGINE
            self._dialect = found
            log.info("MT5 REST dialect of %s: %s", self.base_url, found)
        return self._dialect

    def __enter__(self) -> MT5RestClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- server time -------------------------------------------------------------------------------------
    def server_offset(self, symbol: str = "BTCUSD") -> pd.Timedelta:
        """Broker server time minus UTC: configured, or measured once from ``symbol``'s latest tick."""
        if self._offset is None:
            self._offset = self.measure_offset(symbol)
        return self._offset

    def measure_offset(self, symbol: str = "BTCUSD") -> pd.Timedelta:
        """Latest tick (server time) against the server's UTC clock (``/health`` ``time_utc``) or ours."""
        import pandas as pd

        health = self.health()
        tick = self._object(f"/symbol_info_tick/{quote(symbol, safe='')}", ("time",), "GET /symbol_info_tick")
        tick_server = payloads.server_times_to_utc([tick.get("time_msc") or tick["time"] * 1000], pd.Timedelta(0),
                                                   "tick", unit="ms")[0]
        ref = health.get("time_utc") if isinstance(health, dict) else None
        now = to_utc(ref) if ref else pd.Timestamp.now(tz="UTC")
        raw = tick_server - now
        if abs(raw) > pd.Timedelta(hours=15):
            raise OperationalError(f"cannot measure the server time offset: the latest {symbol} tick is "
                                   f"{raw} away from UTC now (market closed?); set connector.server_time_offset")
        quantum = pd.Timedelta(minutes=_OFFSET_QUANTUM_MINUTES)
        offset = pd.Timedelta(round(raw / quantum) * quantum)
        log.info("measured MT5 server time offset %s (raw %s)", offset, raw)
        return offset

    def _utc_to_server(self, ts: pd.Timestamp, symbol: str) -> str:
        return contract.iso((ts.tz_convert("UTC").tz_localize(None) + self.server_offset(symbol)).to_pydatetime())

    # -- read API ------------------------------------------------------------------------------------------
    def _object(self, path: str, fields: tuple[str, ...], what: str) -> dict[str, Any]:
        return payloads.require_fields(self.transport.get(path), fields, what)

    def health(self) -> dict[str, Any]:
        health = self._object("/health", ("status",), "GET /health")
        if self._dialect is None:
            self._dialect = detect(health)
        return health

    def account_info(self) -> dict[str, Any]:
        """Balance, equity, margin. The quant-server bridge has no such route (only some forks add it):
        a 404 there is a clear error naming the route, not a guess from other routes."""
        try:
            info = self._object("/account_info", ("balance", "equity", "margin", "margin_free"),
                                "GET /account_info")
        except (InvalidRequestError, BadResponseError) as exc:
            if getattr(exc, "status", None) == 404:
                raise missing_route("GET /account_info", " (HTTP 404)") from None
            raise
        for key in ("balance", "equity", "margin", "margin_free"):
            if isinstance(info[key], bool) or not isinstance(info[key], int | float) or not math.isfinite(info[key]):
                raise BadResponseError(f"GET /account_info: {key} is not a number: {info[key]!r}")
        return info

    def symbol_info(self, symbol: str) -> dict[str, Any]:
        return self._object(f"/symbol_info/{quote(symbol, safe='')}", ("name", "digits", "point"), "GET /symbol_info")

    def symbol_spec(self, symbol: str, max_age_s: float = SPEC_MAX_AGE_S) -> dict[str, Any]:
        """``symbol_info`` remembered for ``max_age_s`` seconds: what send_order checks a volume against.

        A symbol's contract (volume limits and step, point, digits) changes on the broker's schedule, not
        per order, and MetaTrader5's own ``symbol_info`` reads the terminal's local copy too; re-reading it
        before every order was one of the three round trips of ``send_order``. The server checks each order
        against its live contract, so a stale copy can get an order refused, never placed wrongly."""
        now = time.monotonic()
        cached = self._specs.get(symbol)
        if cached is None or now - cached[0] > max_age_s:
            cached = (now, self.symbol_info(symbol))
            self._specs[symbol] = cached
        return dict(cached[1])

    def latest_tick(self, symbol: str) -> dict[str, Any]:
        """The latest tick with ``time`` as a UTC Timestamp."""
        import pandas as pd

        tick = self._object(f"/symbol_info_tick/{quote(symbol, safe='')}", ("time", "bid", "ask"),
                            "GET /symbol_info_tick")
        # Polled in live loops: parsed by hand, no DataFrame.
        try:
            ms = int(tick.get("time_msc") or int(tick["time"]) * 1000)
            out = {"time": pd.Timestamp(ms, unit="ms", tz="UTC") - self.server_offset(symbol),
                   "bid": float(tick["bid"]), "ask": float(tick["ask"]), "last": float(tick.get("last") or 0.0),
                   "volume": float(tick.get("volume") or 0.0)}
        except (TypeError, ValueError):
            raise BadResponseError(f"GET /symbol_info_tick: unreadable tick {tick!r}") from None
        if not (math.isfinite(out["bid"]) and math.isfinite(out["ask"])):
            raise BadResponseError("GET /symbol_info_tick: non-finite bid/ask")
        return out

    def bars(self, symbol: str, timeframe: str, count: int, start_pos: int = 0) -> pd.DataFrame:
        """The latest ``count`` bars (``start_pos`` bars back from the current one), oldest first.
        The last row is the bar still forming when ``start_pos`` is 0."""
        tf = contract.timeframe(timeframe)
        if count < 1 or start_pos < 0:
            raise InvalidRequestError(f"count must be >= 1 and start_pos >= 0, got {count}, {start_pos}")
        if self.dialect == _QUANT:
            # That bridge always counts from the forming bar (no start_pos): one request, no paging.
            if start_pos or count > self.max_bars:
                raise missing_route("GET /fetch_data_pos?start_pos", " (no paging: ask for at most "
                                            "max_bars, or use bars_range)")
            payload = self.transport.get("/fetch_data_pos", symbol=symbol, timeframe=tf.mt5, num_bars=count)
            return payloads.bars_frame(payload, self.server_offset(symbol), "GET /fetch_data_pos")
        out = []
        for lo in range(start_pos, start_pos + count, self.max_bars):
            n = min(self.max_bars, start_pos + count - lo)
            payload = self.transport.get("/fetch_data_pos", symbol=symbol, timeframe=tf.mt5, num_bars=n, start_pos=lo)
            out.append(payloads.bars_frame(payload, self.server_offset(symbol), "GET /fetch_data_pos"))
        return _concat(out[::-1])

    def bars_range(self, symbol: str, timeframe: str, start: str | pd.Timestamp, end: str | pd.Timestamp, *,
                   progress: bool = False) -> pd.DataFrame:
        """Bars with UTC open time in ``[start, end)``, fetched in chunks of at most ``max_bars``."""
        import pandas as pd

        tf = contract.timeframe(timeframe)
        start_u, end_u = _utc(start, "start"), _utc(end, "end")
        if start_u >= end_u:
            raise InvalidRequestError(f"start {start_u.isoformat()} must be before end {end_u.isoformat()}")
        step = pd.Timedelta(seconds=tf.seconds * self.max_bars)
        windows = list(_windows(start_u, end_u, step))
        parts = []
        for lo, hi in _progress(windows, progress, f"fetching {symbol} {tf.mt5} bars"):
            # The contract's end is inclusive: stop one second short so chunks never overlap.
            payload = self.transport.get("/fetch_data_range", symbol=symbol, timeframe=tf.mt5,
                                         start=self._utc_to_server(lo, symbol),
                                         end=self._utc_to_server(hi - pd.Timedelta(seconds=1), symbol))
            frame = payloads.bars_frame(payload, self.server_offset(symbol), "GET /fetch_data_range")
            parts.append(frame.loc[(frame.index >= lo) & (frame.index < hi)])
        return _concat(parts)

    def ticks_range(self, symbol: str, start: str | pd.Timestamp, end: str | pd.Timestamp) -> pd.DataFrame:
        """Ticks with UTC time in ``[start, end)`` (exact duplicates dropped)."""
        start_u, end_u = _utc(start, "start"), _utc(end, "end")
        if start_u >= end_u:
            raise InvalidRequestError(f"start {start_u.isoformat()} must be before end {end_u.isoformat()}")
        if self.dialect == _QUANT:
            raise missing_route("GET /fetch_ticks_range")
        payload = self.transport.get("/fetch_ticks_range", symbol=symbol, start=self._utc_to_server(start_u, symbol),
                                     end=self._utc_to_server(end_u, symbol))
        frame = payloads.ticks_frame(payload, self.server_offset(symbol), "GET /fetch_ticks_range")
        return frame.loc[(frame.index >= start_u) & (frame.index < end_u)]

    # -- helpers for sources -----------------------------------------------------------------------------
    @staticmethod
    def to_engine_bars(frame: pd.DataFrame, volume: str = "real") -> pd.DataFrame:
        """The engine bar contract (open..close, volume) from a bars frame; ``volume``: real or tick.
        Falls back to tick volume when the broker reports no real volume (common on CFDs)."""
        if volume not in ("real", "tick"):
            raise ConfigError("source.volume", f"{volume!r}: use real or tick")
        vol = frame["real_volume"] if volume == "real" and frame["real_volume"].any() else frame["tick_volume"]
        out = frame[["open", "high", "low", "close"]].copy()
        out["volume"] = vol.astype("float64")
        return conform_bars(out, what="MT5 bars")


def _windows(start: pd.Timestamp, end: pd.Timestamp, step: pd.Timedelta) -> Iterator[
        tuple[pd.Timestamp, pd.Timestamp]]:
    cur = start
    while cur < end:
        nxt = min(cur + step, end)
        yield cur, nxt
        cur = nxt


def _utc(value: str | pd.Timestamp, key: str) -> pd.Timestamp:
    try:
        return to_utc(value)
    except (ValueError, TypeError):
        raise InvalidRequestError(f"{key}={value!r} is not a time; use ISO 8601 such as 2024-03-01T00:00Z") from None


def _concat(parts: list[pd.DataFrame]) -> pd.DataFrame:
    import pandas as pd

    parts = [p for p in parts if len(p)]
    if not parts:
        return payloads.bars_frame([], pd.Timedelta(0))
    out = pd.concat(parts) if len(parts) > 1 else parts[0]
    if out.index.has_duplicates:
        out = out[~out.index.duplicated(keep="last")]
    return out.sort_index(kind="stable") if not out.index.is_monotonic_increasing else out


def _progress(items: list[Any], enabled: bool, label: str) -> Any:
    if not enabled or len(items) < 3:
        return items
    from rich.progress import track

    return track(items, description=label, transient=True)
