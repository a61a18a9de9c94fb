"""MT5RestClient: MetaTrader 5 over the REST contract (docs/mt5_rest_api.md) from any OS.

- One pooled ``requests.Session``; every call has explicit (connect, read) timeouts.
- Idempotent GETs retry with exponential backoff and jitter on timeouts, dropped connections, 429
  and 5xx (a server's Retry-After wins). POSTs that move money never retry blindly: after a timeout
  the client looks for the order by magic+comment first and only then resends, with the same
  ``Idempotency-Key`` so a server that did run it answers with the first result.
- Errors are engine.errors types; the API key appears in no log line, message or repr.
- Bars and ticks come back as UTC-indexed DataFrames; broker server time is converted with a
  configured offset or one measured against the server's latest tick.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import math
import random
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

import pandas as pd
import requests
from urllib3.util.retry import Retry

from engine.connectors import contract as c
from engine.connectors import frames as f
from engine.connectors import jsonio
from engine.connectors.retry import RetryPolicy, parse_retry_after, retry_wait
from engine.data.frames import conform_bars, to_utc
from engine.errors import (
    AuthError,
    BadResponseError,
    ConfigError,
    InvalidRequestError,
    NetworkError,
    OperationalError,
    OrderRejectedError,
    OrderStateUnknownError,
    RequestTimeoutError,
    RequoteError,
    RetryableError,
    ServerError,
)
from engine.redact import MASK, remember

log = logging.getLogger("engine.connectors.mt5_rest")

_LOOPBACK = {"127.0.0.1", "localhost", "::1"}
# Offsets are measured to the nearest quarter hour: brokers use whole or half/quarter-hour zones,
# and the latest tick may be seconds or minutes old.
_OFFSET_QUANTUM = pd.Timedelta(minutes=15)


@dataclass(frozen=True)
class OrderResult:
    """An ``order_send`` outcome. ``reconciled`` is True when it was found by magic+comment after a
    lost answer rather than read from the answer itself."""

    retcode: int
    deal: int
    order: int
    volume: float
    price: float
    bid: float
    ask: float
    comment: str
    request_id: int
    idempotency_key: str
    reconciled: bool = False

    @property
    def ok(self) -> bool:
        return self.retcode in c.SUCCESS_RETCODES

    @classmethod
    def from_payload(cls, payload: Mapping[str, Any], key: str, reconciled: bool = False) -> OrderResult:
        try:
            return cls(retcode=int(payload["retcode"]), deal=int(payload.get("deal") or 0),
                       order=int(payload.get("order") or 0), volume=float(payload.get("volume") or 0.0),
                       price=float(payload.get("price") or 0.0), bid=float(payload.get("bid") or 0.0),
                       ask=float(payload.get("ask") or 0.0), comment=str(payload.get("comment") or ""),
                       request_id=int(payload.get("request_id") or 0), idempotency_key=key, reconciled=reconciled)
        except (KeyError, TypeError, ValueError):
            raise BadResponseError(f"order result lacks a numeric retcode: {sorted(payload)!r}") from None


class MT5RestClient:
    """A client for one MT5 REST endpoint (the bridge on the terminal's host, or the simulator).

    ``server_time_offset_hours``: broker server time minus UTC; None measures it once from the latest
    tick. ``max_bars``: the most bars one request may ask for (the terminal's "Max bars in chart" or
    the bridge's cap); longer ranges are fetched in chunks. ``session`` may be injected (e.g. with a
    custom adapter); the client closes only a session it created.
    """

    def __init__(self, base_url: str, api_key: str, *, connect_timeout: float = 3.0, read_timeout: float = 30.0,
                 retries: int = 3, backoff_base: float = 0.2, backoff_cap: float = 5.0, jitter: float = 1.0,
                 max_retry_after: float = 30.0, order_retries: int = 2,
                 server_time_offset_hours: float | None = None, max_bars: int = c.DEFAULT_MAX_BARS,
                 verify_tls: bool = True, ca_bundle: str | None = None, session: requests.Session | None = None,
                 seed: int | None = None, sleep: Callable[[float], None] = time.sleep) -> None:
        parts = urlsplit(str(base_url))
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError("connector.base_url", f"{base_url!r} is not an http(s) URL; e.g. "
                                                    "https://mt5-bridge.example:8443")
        if not api_key or not isinstance(api_key, str):
            raise ConfigError("connector.api_key", "empty API key; set the secret mt5_api_key "
                                                   "(python -m engine.secrets) or use connector=simulator")
        if connect_timeout <= 0 or read_timeout <= 0:
            raise ConfigError("connector.timeouts", "connect_timeout and read_timeout must be > 0 seconds")
        if max_bars < 1 or order_retries < 0:
            raise ConfigError("connector.max_bars", "max_bars must be >= 1 and order_retries >= 0")
        if parts.scheme == "http" and parts.hostname not in _LOOPBACK:
            log.warning("MT5 REST over plain http to %s: the API key and orders travel unencrypted; use https",
                        parts.hostname)
        remember(api_key)  # log redaction masks it wherever it might show up
        self.base_url = str(base_url).rstrip("/")
        self._auth = {"Authorization": f"Bearer {api_key}"}
        self.timeout = (float(connect_timeout), float(read_timeout))
        self.policy = RetryPolicy(retries=retries, base=backoff_base, cap=backoff_cap, jitter=jitter,
                                  max_retry_after=max_retry_after)
        self.order_retries = order_retries
        self.max_bars = int(max_bars)
        self._offset = None if server_time_offset_hours is None else pd.Timedelta(hours=server_time_offset_hours)
        self._own_session = session is None
        self._session = session or requests.Session()
        if session is not None:
            retries = []
            for route in ("/order", "/close_position"):  # mounts match by prefix: check the POST URLs
                with contextlib.suppress(requests.exceptions.InvalidSchema):
                    retries.append(getattr(session.get_adapter(self.base_url + route), "max_retries", None))
            if any(_posts_may_repeat(r) for r in retries):
                # urllib3 would resend an order behind our back, skipping reconciliation.
                raise ConfigError("connector.session", "the injected session's adapter max_retries may resend "
                                                       "POSTs (orders); mount an adapter whose Retry has "
                                                       "read=0, status=0, other=0 or allowed_methods without "
                                                       "POST (the client retries GETs itself)")
        self._verify: bool | str = ca_bundle if ca_bundle else bool(verify_tls)
        self._rng = random.Random(seed)
        self._sleep = sleep

    def __repr__(self) -> str:
        return f"{type(self).__name__}(base_url={self.base_url!r}, api_key={MASK!r})"

    def close(self) -> None:
        if self._own_session:
            self._session.close()

    def __enter__(self) -> MT5RestClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- transport -------------------------------------------------------------------------------------
    def _decode(self, resp: requests.Response, what: str) -> Any:
        status = resp.status_code
        if status in (401, 403):
            raise AuthError(f"{what}: the server refused the API key (HTTP {status}); set the secret "
                            "mt5_api_key to the bridge's token")
        try:
            body = jsonio.loads(resp.content) if resp.content else None
        except (ValueError, UnicodeDecodeError):
            body = _NOT_JSON
        if status == 429 or status >= 500:
            detail = body.get("error") if isinstance(body, dict) else None
            raise ServerError(f"{what}: HTTP {status}{f' ({detail})' if detail else ''}; retrying may help",
                              status=status, retry_after=parse_retry_after(resp.headers.get("Retry-After")))
        if body is _NOT_JSON:
            kind = resp.headers.get("Content-Type", "unknown type").split(";")[0]
            snippet = _redact(resp.text[:80], self._auth["Authorization"][7:]).replace("\n", " ")
            raise BadResponseError(f"{what}: HTTP {status} answered {kind}, not JSON ({snippet!r}); check "
                                   "connector.base_url points at an MT5 REST bridge, not a web page or proxy")
        if status >= 400 or (isinstance(body, dict) and set(body) == {"error"}):
            detail = body.get("error") if isinstance(body, dict) else body
            exc = InvalidRequestError(f"{what}: refused (HTTP {status}): {_redact(str(detail), self._auth['Authorization'][7:])}",
                                      status=status)
            exc.payload = body  # type: ignore[attr-defined]
            raise exc
        return body

    def _request(self, method: str, path: str, *, params: Mapping[str, Any] | None = None, body: Any = None,
                 headers: Mapping[str, str] | None = None, retry: bool = True) -> Any:
        what = f"{method} {path}"
        url = self.base_url + path
        hdrs = self._auth if headers is None else {**self._auth, **headers}
        attempts = self.policy.retries + 1 if retry else 1
        for attempt in range(attempts):
            try:
                resp = self._session.request(method, url, params=params, json=body, headers=hdrs,
                                             timeout=self.timeout, verify=self._verify)
            except requests.Timeout as exc:
                which = "connect" if isinstance(exc, requests.ConnectTimeout) else "read"
                err: RetryableError = RequestTimeoutError(
                    f"{what}: no answer within the {which} timeout of "
                    f"{self.timeout[0 if which == 'connect' else 1]}s from {self.base_url}")
            except requests.exceptions.SSLError:
                raise OperationalError(f"{what}: TLS verification of {self.base_url} failed; give the bridge's CA "
                                       "as connector.ca_bundle (do not turn verification off)") from None
            except requests.RequestException as exc:
                err = NetworkError(f"{what}: cannot reach {self.base_url} ({type(exc).__name__}); is the bridge "
                                   "running and the address right?")
            else:
                try:
                    return self._decode(resp, what)
                except RetryableError as exc:
                    err = exc
            if attempt + 1 >= attempts:
                raise err
            wait = retry_wait(attempt, self.policy, getattr(err, "retry_after", None), self._rng)
            log.info("%s failed (%s); retry %d/%d in %.2fs", what, type(err).__name__, attempt + 1,
                     attempts - 1, wait)
            self._sleep(wait)
        raise AssertionError("unreachable")  # pragma: no cover

    def _get(self, path: str, **params: Any) -> Any:
        return self._request("GET", path, params={k: v for k, v in params.items() if v is not None} or None)

    # -- server time -------------------------------------------------------------------------------------
    def server_offset(self, symbol: str = "BTCUSD") -> pd.Timedelta:
        """Broker server time minus UTC: configured, or measured once from ``symbol``'s latest tick."""
        if self._offset is None:
            self._offset = self.measure_offset(symbol)
        return self._offset

    def measure_offset(self, symbol: str = "BTCUSD") -> pd.Timedelta:
        """Latest tick (server time) against the server's UTC clock (``/health`` ``time_utc``) or ours."""
        health = self.health()
        tick = f.require_fields(self._get(f"/symbol_info_tick/{quote(symbol, safe='')}"), ("time",),
                                "GET /symbol_info_tick")
        tick_server = f.server_times_to_utc([tick.get("time_msc") or tick["time"] * 1000], pd.Timedelta(0),
                                            "tick", unit="ms")[0]
        ref = health.get("time_utc") if isinstance(health, dict) else None
        now = to_utc(ref) if ref else pd.Timestamp.now(tz="UTC")
        raw = tick_server - now
        if abs(raw) > pd.Timedelta(hours=15):
            raise OperationalError(f"cannot measure the server time offset: the latest {symbol} tick is "
                                   f"{raw} away from UTC now (market closed?); set connector.server_time_offset")
        offset = pd.Timedelta(round(raw / _OFFSET_QUANTUM) * _OFFSET_QUANTUM)
        log.info("measured MT5 server time offset %s (raw %s)", offset, raw)
        return offset

    def _utc_to_server(self, ts: pd.Timestamp, symbol: str) -> str:
        return c.iso((ts.tz_convert("UTC").tz_localize(None) + self.server_offset(symbol)).to_pydatetime())

    # -- read API ------------------------------------------------------------------------------------------
    def health(self) -> dict[str, Any]:
        return f.require_fields(self._get("/health"), ("status",), "GET /health")

    def account_info(self) -> dict[str, Any]:
        info = f.require_fields(self._get("/account_info"), ("balance", "equity", "margin", "margin_free"),
                                "GET /account_info")
        for key in ("balance", "equity", "margin", "margin_free"):
            if isinstance(info[key], bool) or not isinstance(info[key], int | float) or not math.isfinite(info[key]):
                raise BadResponseError(f"GET /account_info: {key} is not a number: {info[key]!r}")
        return info

    def symbol_info(self, symbol: str) -> dict[str, Any]:
        return f.require_fields(self._get(f"/symbol_info/{quote(symbol, safe='')}"), ("name", "digits", "point"),
                                "GET /symbol_info")

    def latest_tick(self, symbol: str) -> dict[str, Any]:
        """The latest tick with ``time`` as a UTC Timestamp."""
        tick = f.require_fields(self._get(f"/symbol_info_tick/{quote(symbol, safe='')}"), ("time", "bid", "ask"),
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
        tf = c.timeframe(timeframe)
        if count < 1 or start_pos < 0:
            raise InvalidRequestError(f"count must be >= 1 and start_pos >= 0, got {count}, {start_pos}")
        out = []
        for lo in range(start_pos, start_pos + count, self.max_bars):
            n = min(self.max_bars, start_pos + count - lo)
            out.append(f.bars_frame(self._get("/fetch_data_pos", symbol=symbol, timeframe=tf.mt5, num_bars=n,
                                              start_pos=lo), self.server_offset(symbol), "GET /fetch_data_pos"))
        return _concat(out[::-1])

    def _chunks(self, start: pd.Timestamp, end: pd.Timestamp, step: pd.Timedelta) -> Iterator[
            tuple[pd.Timestamp, pd.Timestamp]]:
        cur = start
        while cur < end:
            nxt = min(cur + step, end)
            yield cur, nxt
            cur = nxt

    def bars_range(self, symbol: str, timeframe: str, start: str | pd.Timestamp, end: str | pd.Timestamp, *,
                   progress: bool = False) -> pd.DataFrame:
        """Bars with UTC open time in ``[start, end)``, fetched in chunks of at most ``max_bars``."""
        tf = c.timeframe(timeframe)
        start_u, end_u = _utc(start, "start"), _utc(end, "end")
        if start_u >= end_u:
            raise InvalidRequestError(f"start {start_u.isoformat()} must be before end {end_u.isoformat()}")
        step = pd.Timedelta(seconds=tf.seconds * self.max_bars)
        windows = list(self._chunks(start_u, end_u, step))
        parts = []
        for lo, hi in _progress(windows, progress, f"fetching {symbol} {tf.mt5} bars"):
            # The contract's end is inclusive: stop one second short so chunks never overlap.
            payload = self._get("/fetch_data_range", symbol=symbol, timeframe=tf.mt5,
                                start=self._utc_to_server(lo, symbol),
                                end=self._utc_to_server(hi - pd.Timedelta(seconds=1), symbol))
            frame = f.bars_frame(payload, self.server_offset(symbol), "GET /fetch_data_range")
            parts.append(frame.loc[(frame.index >= lo) & (frame.index < hi)])
        return _concat(parts)

    def ticks_range(self, symbol: str, start: str | pd.Timestamp, end: str | pd.Timestamp) -> pd.DataFrame:
        """Ticks with UTC time in ``[start, end)`` (exact duplicates dropped)."""
        start_u, end_u = _utc(start, "start"), _utc(end, "end")
        if start_u >= end_u:
            raise InvalidRequestError(f"start {start_u.isoformat()} must be before end {end_u.isoformat()}")
        payload = self._get("/fetch_ticks_range", symbol=symbol, start=self._utc_to_server(start_u, symbol),
                            end=self._utc_to_server(end_u, symbol))
        frame = f.ticks_frame(payload, self.server_offset(symbol), "GET /fetch_ticks_range")
        return frame.loc[(frame.index >= start_u) & (frame.index < end_u)]

    def positions(self, symbol: str | None = None) -> pd.DataFrame:
        payload = self._get("/get_positions", symbol=symbol)
        return f.records_frame(payload, c.POSITION_FIELDS, self._offset_for(payload, symbol), ("time",),
                               "GET /get_positions")

    def orders(self, symbol: str | None = None) -> pd.DataFrame:
        """Pending orders."""
        payload = self._get("/orders_get", symbol=symbol)
        return f.records_frame(payload, c.ORDER_FIELDS, self._offset_for(payload, symbol),
                               ("time_setup",), "GET /orders_get")

    def history_deals(self, start: str | pd.Timestamp | None = None, end: str | pd.Timestamp | None = None,
                      symbol: str = "BTCUSD") -> pd.DataFrame:
        payload = self._get("/history_deals_get", **self._history_params(start, end, symbol))
        return f.records_frame(payload, c.DEAL_FIELDS, self._offset_for(payload, symbol), ("time",),
                               "GET /history_deals_get")

    def history_orders(self, start: str | pd.Timestamp | None = None, end: str | pd.Timestamp | None = None,
                       symbol: str = "BTCUSD") -> pd.DataFrame:
        payload = self._get("/history_orders_get", **self._history_params(start, end, symbol))
        return f.records_frame(payload, c.ORDER_FIELDS, self._offset_for(payload, symbol),
                               ("time_setup", "time_done"), "GET /history_orders_get")

    def _history_params(self, start: Any, end: Any, symbol: str) -> dict[str, str | None]:
        s = None if start is None else self._utc_to_server(_utc(start, "start"), symbol)
        e = None if end is None else self._utc_to_server(_utc(end, "end"), symbol)
        return {"start": s, "end": e}

    def _offset_for(self, payload: Any, symbol: str | None) -> pd.Timedelta:
        if self._offset is not None:
            return self._offset
        if isinstance(payload, list) and payload and isinstance(payload[0], dict):
            return self.server_offset(symbol or str(payload[0].get("symbol") or "BTCUSD"))
        return pd.Timedelta(0)  # nothing to convert

    # -- orders ----------------------------------------------------------------------------------------
    def send_order(self, symbol: str, side: str, volume: float, *, kind: str = "market", price: float = 0.0,
                   sl: float = 0.0, tp: float = 0.0, deviation: int = 20, magic: int = 0, comment: str | None = None,
                   idempotency_key: str | None = None, type_filling: str = "IOC") -> OrderResult:
        """Send a market or limit order once, whatever happens to the connection.

        ``comment`` defaults to ``eng-<24 hex digits of sha256(key)>`` so that it identifies the order
        for reconciliation; pass a deterministic ``idempotency_key`` (e.g. from the signal) to stay
        safe across restarts. A custom ``comment`` must be unique per order (with the same magic):
        reconciliation takes any deal or pending order carrying it as this order. Refusals raise
        OrderRejectedError, price moves RequoteError, an unknowable outcome OrderStateUnknownError.
        """
        side_u, kind_l = str(side).upper(), str(kind).lower()
        if side_u not in ("BUY", "SELL") or kind_l not in ("market", "limit"):
            raise InvalidRequestError(f"side must be buy/sell and kind market/limit, got {side!r}, {kind!r}")
        if isinstance(volume, bool) or not isinstance(volume, int | float) or not math.isfinite(volume) or volume <= 0:
            raise InvalidRequestError(f"volume must be a positive number of lots, got {volume!r}")
        key = _key(idempotency_key)
        comment = order_comment(key) if comment is None else comment
        if not isinstance(comment, str) or not comment or len(comment) > c.MAX_COMMENT:
            raise InvalidRequestError(f"comment must be 1..{c.MAX_COMMENT} characters: it identifies the order "
                                      "when an answer is lost")
        try:
            magic = int(magic)
            body = {"action": "DEAL" if kind_l == "market" else "PENDING", "symbol": str(symbol),
                    "volume": float(volume), "type": side_u if kind_l == "market" else f"{side_u}_LIMIT",
                    "price": float(price), "sl": float(sl), "tp": float(tp), "deviation": int(deviation),
                    "magic": magic, "comment": comment, "type_filling": type_filling,
                    "type_time": c.ORDER_TIME_GTC}
        except (TypeError, ValueError):
            raise InvalidRequestError("price, sl, tp must be numbers and deviation, magic integers; got "
                                      f"{price!r}, {sl!r}, {tp!r}, {deviation!r}, {magic!r}") from None
        return self._send_money("/order", body, key, lambda: self._find(magic, comment, None))

    def close_position(self, ticket: int, volume: float | None = None, *, deviation: int = 20, magic: int = 0,
                       comment: str | None = None, idempotency_key: str | None = None) -> OrderResult:
        """Close (all or ``volume`` of) a position by ticket; same once-only guarantees as send_order."""
        key = _key(idempotency_key)
        comment = order_comment(key) if comment is None else comment
        try:
            body: dict[str, Any] = {"ticket": int(ticket), "deviation": int(deviation), "magic": int(magic),
                                    "comment": comment}
            if volume is not None:
                body["volume"] = float(volume)
        except (TypeError, ValueError):
            raise InvalidRequestError("ticket, deviation and magic must be integers and volume a number or None; "
                                      f"got {ticket!r}, {deviation!r}, {magic!r}, {volume!r}") from None
        return self._send_money("/close_position", body, key, lambda: self._find(None, comment, int(ticket)))

    def cancel_order(self, order_ticket: int, *, idempotency_key: str | None = None) -> OrderResult:
        key = _key(idempotency_key)
        try:
            body = {"action": "REMOVE", "order": int(order_ticket)}
        except (TypeError, ValueError):
            raise InvalidRequestError(f"order_ticket must be an integer, got {order_ticket!r}") from None

        def gone() -> OrderResult | None:
            still = self.orders()
            if (still["ticket"] == int(order_ticket)).any():
                return None
            # Not pending any more is not "cancelled": it may have filled meanwhile.
            done = self.history_orders()
            states = done.loc[done["ticket"] == int(order_ticket), "state"]
            if len(states) and int(states.iloc[-1]) == c.ORDER_STATE_CANCELED:
                return OrderResult.from_payload(c.result(c.RETCODE_DONE, order=int(order_ticket)), key,
                                                reconciled=True)
            if len(states) and int(states.iloc[-1]) == c.ORDER_STATE_FILLED:
                raise OrderRejectedError(f"POST /order: cannot cancel order {order_ticket}: it filled before the "
                                         "cancel reached the terminal; a position is open",
                                         retcode=c.RETCODE_INVALID_ORDER)
            return None  # unknown here: resend with the same key, the server decides

        return self._send_money("/order", body, key, gone)

    def _find(self, magic: int | None, comment: str, position: int | None) -> dict[str, Any] | None:
        """The deal or pending order carrying ``comment`` (and ``magic``/``position``), if any."""
        deals = self.history_deals()
        hit = deals[deals["comment"] == comment]
        if magic is not None:
            hit = hit[hit["magic"] == magic]
        if position is not None:
            hit = hit[hit["position_id"] == position]
        if len(hit):
            d = hit.iloc[-1]
            return c.result(c.RETCODE_DONE, deal=int(d["ticket"]), order=int(d["order"]), volume=float(d["volume"]),
                            price=float(d["price"]), comment="found by magic+comment")
        if position is None:
            pending = self.orders()
            hit = pending[(pending["comment"] == comment) & (pending["magic"] == magic)]
            if len(hit):
                o = hit.iloc[-1]
                return c.result(c.RETCODE_PLACED, order=int(o["ticket"]), volume=float(o["volume_initial"]),
                                price=float(o["price_open"]), comment="found by magic+comment")
        return None

    def _send_money(self, path: str, body: dict[str, Any], key: str,
                    reconcile: Callable[[], dict[str, Any] | OrderResult | None]) -> OrderResult:
        what = f"POST {path}"
        last: Exception | None = None
        for attempt in range(self.order_retries + 1):
            if attempt:
                # Never resend before looking: the lost attempt may have executed.
                try:
                    found = reconcile()
                except RetryableError as exc:
                    last = exc
                    self._sleep(retry_wait(attempt - 1, self.policy, None, self._rng))
                    continue
                except BadResponseError as exc:
                    raise OrderStateUnknownError(
                        f"{what}: the order may have executed ({type(last).__name__}) and the terminal's "
                        f"history cannot be read ({exc}); check it for comment {body.get('comment')!r} before "
                        f"trading on (Idempotency-Key {key})") from None
                if found is not None:
                    log.warning("%s: reconciled key %s after %s", what, key, type(last).__name__)
                    return found if isinstance(found, OrderResult) else \
                        OrderResult.from_payload(found, key, reconciled=True)
                self._sleep(retry_wait(attempt - 1, self.policy, getattr(last, "retry_after", None), self._rng))
            try:
                payload = self._request("POST", path, body=body, headers={c.IDEMPOTENCY_HEADER: key}, retry=False)
                result = OrderResult.from_payload(f.require_fields(payload, ("retcode",), what), key)
            except (RetryableError, BadResponseError) as exc:
                # A garbled answer may follow an executed order just like a lost one: look before resending.
                last = exc
                continue
            except InvalidRequestError as exc:
                payload = getattr(exc, "payload", None)
                if not (isinstance(payload, dict) and "retcode" in payload):
                    raise
                result = OrderResult.from_payload(f.require_fields(payload, ("retcode",), what), key)
            if result.ok:
                return result
            if result.retcode in c.RECONCILE_RETCODES:
                last = OrderStateUnknownError(f"{what}: retcode {result.retcode}")
                continue
            name = c.RETCODE_NAMES.get(result.retcode, "unknown retcode")
            message = f"{what}: refused with retcode {result.retcode} ({name}): {result.comment}"
            if result.retcode in c.REPRICE_RETCODES:
                raise RequoteError(message + "; re-price and decide again", retcode=result.retcode,
                                   result=dict(payload))
            raise OrderRejectedError(message, retcode=result.retcode, result=dict(payload))
        raise OrderStateUnknownError(
            f"{what}: outcome unknown after {self.order_retries + 1} attempt(s) and reconciliation "
            f"(last: {type(last).__name__}: {last}); check the terminal for comment {body.get('comment')!r} "
            f"before trading on (Idempotency-Key {key})")

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


_NOT_JSON = object()


def _key(idempotency_key: str | None) -> str:
    if idempotency_key is None:
        return uuid.uuid4().hex
    if not isinstance(idempotency_key, str) or not idempotency_key.strip():
        raise InvalidRequestError(f"idempotency_key must be a non-empty string, got {idempotency_key!r}")
    return idempotency_key


def order_comment(key: str) -> str:
    """The default order comment for an Idempotency-Key. A digest, not a prefix: deterministic keys
    derived from signals share long prefixes, and two orders with one comment would reconcile as one."""
    return "eng-" + hashlib.sha256(key.encode()).hexdigest()[:24]


def _posts_may_repeat(retry: Any) -> bool:
    """Whether an adapter's urllib3 Retry could resend a POST that already reached the server."""
    if not isinstance(retry, Retry):
        return False
    if retry.total == 0 or retry.total is False:
        return False
    methods = retry.allowed_methods
    # Falsy allowed_methods means every method is retryable; "other" errors ignore the method.
    method_ok = not methods or "POST" in {str(m).upper() for m in methods}
    def live(v: Any) -> bool:
        return v is None or (v is not False and v > 0)
    return live(retry.other) or (method_ok and (live(retry.read) or live(retry.status)))


def _redact(text: str, secret: str) -> str:
    return text.replace(secret, MASK) if secret else text


def _utc(value: str | pd.Timestamp, key: str) -> pd.Timestamp:
    try:
        return to_utc(value)
    except (ValueError, TypeError):
        raise InvalidRequestError(f"{key}={value!r} is not a time; use ISO 8601 such as 2024-03-01T00:00Z") from None


def _concat(parts: list[pd.DataFrame]) -> pd.DataFrame:
    parts = [p for p in parts if len(p)]
    if not parts:
        return f.bars_frame([], pd.Timedelta(0))
    out = pd.concat(parts) if len(parts) > 1 else parts[0]
    if out.index.has_duplicates:
        out = out[~out.index.duplicated(keep="last")]
    return out.sort_index(kind="stable") if not out.index.is_monotonic_increasing else out


def _progress(items: list[Any], enabled: bool, label: str) -> Any:
    if not enabled or len(items) < 3:
        return items
    from rich.progress import track

    return track(items, description=label, transient=True)

