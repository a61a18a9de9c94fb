"""MT5RestClient against real HTTP servers on 127.0.0.1: the simulator, and tiny stub servers for
broken answers (HTML pages, malformed JSON, refused connections)."""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import pandas as pd
import pytest

from engine.connectors import contract as c
from engine.connectors.mt5_rest import MT5RestClient, order_comment
from engine.connectors.sim_market import SimSettings
from engine.connectors.simulator import DEV_TOKEN, Faults, Simulator
from engine.errors import (
    AuthError,
    BadResponseError,
    ConfigError,
    InvalidRequestError,
    NetworkError,
    OrderRejectedError,
    OrderStateUnknownError,
    RequestTimeoutError,
    RequoteError,
    ServerError,
)
from tests.connectors.conftest import REPLAY_START

PRICES = ["open", "high", "low", "close"]


# -- data ---------------------------------------------------------------------------------------------
def test_bars_range_in_chunks_equals_the_real_data(make_simulator: Callable[..., Simulator],
                                                   make_client: Callable[..., MT5RestClient],
                                                   sample_bars: pd.DataFrame) -> None:
    sim = make_simulator(max_bars=500)
    client = make_client(sim.url, max_bars=500, server_time_offset_hours=2)
    start, end = pd.Timestamp("2024-02-01T03:17Z"), pd.Timestamp("2024-02-02T05:00Z")
    got = client.bars_range("BTCUSD", "M1", start, end)
    want = sample_bars.loc[(sample_bars.index >= start) & (sample_bars.index < end)]
    assert len(got) == len(want) == int((end - start) / pd.Timedelta(minutes=1))
    assert got.index.equals(want.index)  # UTC, chunk seams without gaps or duplicates
    assert str(got.index.tz) == "UTC" and got.index.name == "timestamp"
    pd.testing.assert_frame_equal(got[PRICES], want[PRICES])
    assert (got["real_volume"].to_numpy() == want["volume"].to_numpy()).all()


def test_measured_offset_matches_the_server_and_gives_the_same_bars(client: MT5RestClient,
                                                                    make_client: Callable[..., MT5RestClient]) -> None:
    assert client.server_offset() == pd.Timedelta(hours=2)
    configured = make_client(client.base_url, server_time_offset_hours=2.0)
    a = client.bars_range("BTCUSD", "M15", "2024-02-10", "2024-02-11")
    b = configured.bars_range("BTCUSD", "M15", "2024-02-10", "2024-02-11")
    pd.testing.assert_frame_equal(a, b)
    assert a.index[0] == pd.Timestamp("2024-02-10T00:00Z") and len(a) == 96


def test_wrong_offset_shifts_bars_so_the_offset_matters(make_client: Callable[..., MT5RestClient],
                                                        simulator: Simulator, sample_bars: pd.DataFrame) -> None:
    wrong = make_client(simulator.url, server_time_offset_hours=0)
    got = wrong.bars_range("BTCUSD", "M1", "2024-02-10T00:00Z", "2024-02-10T01:00Z")
    assert got.index[0] == pd.Timestamp("2024-02-10T00:00Z")
    # Read with offset 0, the bar stamped 00:00 server time is really 22:00 UTC the day before.
    assert got["open"].iloc[0] == sample_bars.loc["2024-02-09T22:00Z", "open"]


def test_latest_bars_end_with_the_forming_bar_and_never_leak_the_future(client: MT5RestClient,
                                                                        sample_bars: pd.DataFrame) -> None:
    bars = client.bars("BTCUSD", "M1", 30)
    now = pd.Timestamp(REPLAY_START)
    assert bars.index[-1] == now
    forming = bars.iloc[-1]
    assert forming["open"] == forming["high"] == forming["low"] == forming["close"] == sample_bars.loc[now, "open"]
    pd.testing.assert_frame_equal(bars[PRICES].iloc[:-1], sample_bars.loc[bars.index[:-1], PRICES])
    ahead = client.bars_range("BTCUSD", "M1", now, now + pd.Timedelta(hours=3))
    assert list(ahead.index) == [now]


def test_higher_timeframe_forming_bar_uses_only_the_past(make_simulator: Callable[..., Simulator],
                                                         make_client: Callable[..., MT5RestClient],
                                                         sample_bars: pd.DataFrame) -> None:
    sim = make_simulator(settings=SimSettings(start="2024-02-15T12:37:00Z"))
    bars = make_client(sim.url).bars("BTCUSD", "H1", 3)
    assert bars.index[-1] == pd.Timestamp("2024-02-15T12:00Z")
    past = sample_bars.loc["2024-02-15T12:00Z":"2024-02-15T12:36Z"]
    assert bars["high"].iloc[-1] == max(past["high"].max(), sample_bars.loc["2024-02-15T12:37Z", "open"])
    assert bars["close"].iloc[-1] == sample_bars.loc["2024-02-15T12:37Z", "open"]
    full = sample_bars.loc["2024-02-15T11:00Z":"2024-02-15T11:59Z"]
    assert bars["high"].iloc[-2] == full["high"].max() and bars["low"].iloc[-2] == full["low"].min()


def test_replay_advances_in_step_mode_and_at_speed(make_simulator: Callable[..., Simulator],
                                                   make_client: Callable[..., MT5RestClient]) -> None:
    sim = make_simulator()
    client = make_client(sim.url, server_time_offset_hours=2)
    t0 = client.latest_tick("BTCUSD")["time"]
    assert sim.advance(5) == 5
    assert client.latest_tick("BTCUSD")["time"] - t0 == pd.Timedelta(minutes=5)
    fast = make_simulator(settings=SimSettings(start=REPLAY_START, speed=3000.0))
    fast_client = make_client(fast.url, server_time_offset_hours=2)
    first = fast_client.latest_tick("BTCUSD")["time"]
    deadline = time.monotonic() + 5
    while fast_client.latest_tick("BTCUSD")["time"] == first and time.monotonic() < deadline:
        time.sleep(0.02)
    assert fast_client.latest_tick("BTCUSD")["time"] > first


def test_ticks_from_real_quotes_and_duplicate_ticks_dropped(make_simulator: Callable[..., Simulator],
                                                            make_client: Callable[..., MT5RestClient],
                                                            shared_data_dir: Any) -> None:
    from engine.connectors.simulator import load_quotes

    quotes = load_quotes(shared_data_dir / "btcusdt_binance_quotes_2024-08-08T2354_to_2024-08-09T0005.csv")
    settings = SimSettings(start="2024-08-09T00:05:00Z")
    clean = make_client(make_simulator(None, ticks=quotes, settings=settings).url)
    dup_sim = make_simulator(None, ticks=quotes, settings=settings, duplicate_tick_rate=0.3)
    dupes = make_client(dup_sim.url)
    start, end = "2024-08-09T00:00:00Z", "2024-08-09T00:01:00Z"
    got = clean.ticks_range("BTCUSD", start, end)
    window = quotes.loc[(quotes.index >= start) & (quotes.index < end)]
    # MT5 ticks carry milliseconds; identical updates within one millisecond collapse to one tick.
    ms = window.set_axis(window.index.floor("ms")).reset_index()
    window = window.loc[~ms.duplicated().to_numpy()]
    assert len(got) == len(window) > 1000
    assert (got["bid"].to_numpy() == window["bid"].to_numpy()).all()
    assert (got["ask"].to_numpy() == window["ask"].to_numpy()).all()
    raw = dupes._get("/fetch_ticks_range", symbol="BTCUSD", start="2024-08-09T02:00:00", end="2024-08-09T02:01:00")
    assert len(raw) > len(window)  # the fault really duplicated ticks on the wire
    pd.testing.assert_frame_equal(dupes.ticks_range("BTCUSD", start, end), got)
    tick = clean.latest_tick("BTCUSD")
    assert tick["time"] <= pd.Timestamp("2024-08-09T00:05:00Z") and tick["ask"] > tick["bid"]


@pytest.mark.parametrize(("call", "error", "needle"), [
    (lambda cl: cl.bars_range("BTCUSD", "M1", "2024-02-02", "2024-02-01"), InvalidRequestError, "before"),
    (lambda cl: cl.bars_range("BTCUSD", "M7", "2024-02-01", "2024-02-02"), InvalidRequestError, "timeframe"),
    (lambda cl: cl.bars_range("BTCUSD", "M1", "not a date", "2024-02-02"), InvalidRequestError, "not a time"),
    (lambda cl: cl.bars("NOPE", "M1", 5), InvalidRequestError, "NOPE"),
    (lambda cl: cl.symbol_info("NOPE"), InvalidRequestError, "unknown symbol"),
    (lambda cl: cl.send_order("BTCUSD", "hold", 0.1), InvalidRequestError, "side"),
    (lambda cl: cl.send_order("BTCUSD", "buy", 0), InvalidRequestError, "volume"),
])
def test_bad_input_gets_a_typed_error(client: MT5RestClient, call: Callable[[MT5RestClient], Any],
                                      error: type[Exception], needle: str) -> None:
    with pytest.raises(error, match=needle):
        call(client)
    assert client.positions().empty


# -- errors, retries and secrets -----------------------------------------------------------------------
def test_wrong_key_is_an_auth_error_without_the_key(simulator: Simulator,
                                                    make_client: Callable[..., MT5RestClient],
                                                    caplog: pytest.LogCaptureFixture) -> None:
    secret = "s3cr3t-never-to-be-seen-0123456789"
    client = make_client(simulator.url, api_key=secret)
    caplog.set_level(logging.DEBUG)
    with pytest.raises(AuthError) as info:
        client.account_info()
    assert secret not in str(info.value) and secret not in repr(client) and "***" in repr(client)
    assert secret not in caplog.text


def test_get_retries_server_errors_and_honours_retry_after(make_simulator: Callable[..., Simulator],
                                                           make_client: Callable[..., MT5RestClient]) -> None:
    sim = make_simulator(faults=Faults(fail_next=2, retry_after="1"))
    waits: list[float] = []
    client = make_client(sim.url, sleep=waits.append, max_retry_after=0.5)
    assert client.account_info()["balance"] == 10_000
    assert waits == [0.5, 0.5]  # the server's Retry-After (1 s) capped by max_retry_after, not our backoff
    sim.faults.fail_next, sim.faults.retry_after = 10, None
    waits.clear()
    with pytest.raises(ServerError, match="503"):
        client.account_info()
    assert len(waits) == 3  # retries=3: bounded
    assert all(0 <= w <= 0.05 for w in waits)  # our own backoff (no Retry-After), capped by backoff_cap


def test_get_timeout_is_retryable_and_bounded(make_simulator: Callable[..., Simulator],
                                             make_client: Callable[..., MT5RestClient]) -> None:
    sim = make_simulator(faults=Faults(latency_ms=600))
    client = make_client(sim.url, read_timeout=0.2, retries=1)
    t0 = time.monotonic()
    with pytest.raises(RequestTimeoutError, match="read timeout"):
        client.account_info()
    assert time.monotonic() - t0 < 3


def test_unreachable_server_is_a_network_error() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    client = MT5RestClient(f"http://127.0.0.1:{port}", DEV_TOKEN, retries=1, backoff_base=0.01,
                           connect_timeout=1.0)
    with pytest.raises(NetworkError, match="cannot reach"):
        client.health()


class _Stub(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    routes: ClassVar[dict[str, tuple[int, str, bytes]]] = {
        "/health": (200, "text/html", b"<!DOCTYPE html><html><body>Welcome to nginx!</body></html>"),
        "/account_info": (200, "application/json", b'{"balance": 1, "equity": '),
        "/symbol_info/BTCUSD": (502, "text/html", b"<html>Bad gateway</html>"),
        "/get_positions": (200, "application/json", b'{"not": "a list"}'),
        "/fetch_data_pos": (200, "application/json", b'[{"time": "2024-01-01T00:00:00", "open": "x", "high": 1,'
                                                     b' "low": 1, "close": 1}]'),
    }

    def do_GET(self) -> None:
        status, kind, body = self.routes.get(self.path.split("?")[0], (404, "text/html", b"<h1>Not Found</h1>"))
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def stub_url() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Stub)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    thread.join(5)
    httpd.server_close()


@pytest.mark.parametrize(("call", "error", "needle"), [
    (lambda cl: cl.health(), BadResponseError, "text/html"),
    (lambda cl: cl.account_info(), BadResponseError, "not JSON"),
    (lambda cl: cl.symbol_info("BTCUSD"), ServerError, "502"),
    (lambda cl: cl.positions(), BadResponseError, "list"),
    (lambda cl: cl.bars("BTCUSD", "M1", 1), BadResponseError, "non-numeric"),
    (lambda cl: cl.orders(), BadResponseError, "not JSON"),
])
def test_broken_answers_get_typed_errors(stub_url: str, call: Callable[[MT5RestClient], Any],
                                         error: type[Exception], needle: str) -> None:
    client = MT5RestClient(stub_url, DEV_TOKEN, retries=1, backoff_base=0.0, server_time_offset_hours=0,
                           sleep=lambda s: None)
    with pytest.raises(error, match=needle):
        call(client)


def test_config_errors_name_the_key() -> None:
    with pytest.raises(ConfigError, match="base_url"):
        MT5RestClient("ftp://host", DEV_TOKEN)
    with pytest.raises(ConfigError, match="api_key"):
        MT5RestClient("http://127.0.0.1:1", "")
    with pytest.raises(ConfigError, match="timeout"):
        MT5RestClient("http://127.0.0.1:1", DEV_TOKEN, read_timeout=0)
    assert MT5RestClient("https://bridge.example", DEV_TOKEN)._verify is True  # TLS checked by default


# -- orders ---------------------------------------------------------------------------------------------
def test_market_round_trip_moves_balance_by_the_real_price_change(make_simulator: Callable[..., Simulator],
                                                                  make_client: Callable[..., MT5RestClient],
                                                                  sample_bars: pd.DataFrame) -> None:
    sim = make_simulator(settings=SimSettings(start=REPLAY_START, spread_points=1000, commission_per_lot=4.0))
    client = make_client(sim.url)
    opened = client.send_order("BTCUSD", "buy", 0.5, magic=9)
    now = pd.Timestamp(REPLAY_START)
    assert opened.retcode == c.RETCODE_DONE and opened.price == round(sample_bars.loc[now, "open"] + 10.0, 2)
    sim.advance(30)
    later = now + pd.Timedelta(minutes=30)
    account = client.account_info()
    floating = (sample_bars.loc[later, "open"] - opened.price) * 0.5
    assert account["equity"] == pytest.approx(10_000 - 2.0 + floating, abs=0.01)
    closed = client.close_position(int(client.positions()["ticket"].iloc[0]))
    assert closed.price == sample_bars.loc[later, "open"]
    assert client.account_info()["balance"] == pytest.approx(10_000 - 4.0 + floating, abs=0.01)
    deals = client.history_deals()
    assert list(deals["entry"]) == [c.DEAL_ENTRY_IN, c.DEAL_ENTRY_OUT]
    assert list(deals["time"]) == [now, later]  # server time converted back to UTC


def test_slippage_is_seeded_and_within_bounds(make_simulator: Callable[..., Simulator],
                                              make_client: Callable[..., MT5RestClient]) -> None:
    prices = []
    for _ in range(2):
        sim = make_simulator(settings=SimSettings(start=REPLAY_START, slippage_points=500, seed=3))
        client = make_client(sim.url)
        ask = client.latest_tick("BTCUSD")["ask"]
        fills = [client.send_order("BTCUSD", "buy", 0.01).price for _ in range(5)]
        assert all(ask <= p <= ask + 5.0 for p in fills) and len(set(fills)) > 1
        prices.append(fills)
    assert prices[0] == prices[1]


@pytest.mark.parametrize(("kwargs", "market_closed", "error", "retcode"), [
    ({"volume": 0.013}, False, OrderRejectedError, c.RETCODE_INVALID_VOLUME),
    ({"volume": 500.0}, False, OrderRejectedError, c.RETCODE_INVALID_VOLUME),
    ({"volume": 50.0}, False, OrderRejectedError, c.RETCODE_NO_MONEY),
    ({"volume": 0.1}, True, OrderRejectedError, c.RETCODE_MARKET_CLOSED),
    ({"volume": 0.1, "price": 1000.0, "deviation": 10}, False, RequoteError, c.RETCODE_REQUOTE),
])
def test_refusals_raise_with_the_retcode_and_change_nothing(simulator: Simulator, client: MT5RestClient,
                                                             kwargs: dict, market_closed: bool,
                                                             error: type[Exception], retcode: int) -> None:
    simulator.market.market_closed = market_closed
    before = client.account_info()
    with pytest.raises(error) as info:
        client.send_order("BTCUSD", "buy", **kwargs)
    assert info.value.retcode == retcode  # type: ignore[attr-defined]
    assert client.positions().empty and client.history_deals().empty
    assert client.account_info() == before


def test_limit_order_fills_when_real_prices_reach_it(simulator: Simulator, client: MT5RestClient,
                                                     sample_bars: pd.DataFrame) -> None:
    spread = simulator.market.s.spread_points * simulator.market.s.point
    now = pd.Timestamp(REPLAY_START)
    future = sample_bars.loc[now:].iloc[:240]
    limit = round(float(future["low"].iloc[1:].min()) + spread + 1.0, 2)  # reached within 4 hours
    assert limit < future["open"].iloc[0] + spread
    placed = client.send_order("BTCUSD", "buy", 0.1, kind="limit", price=limit, magic=5)
    assert placed.retcode == c.RETCODE_PLACED
    hit = future.index[1:][(future["low"].iloc[1:] + spread <= limit).to_numpy()][0]
    steps = int((hit - now) / pd.Timedelta(minutes=1))
    simulator.advance(steps)  # the bar that reaches the limit is still forming: no fill yet
    assert client.positions().empty and len(client.orders()) == 1
    simulator.advance(1)
    pos = client.positions()
    assert len(pos) == 1 and pos["price_open"].iloc[0] <= limit and pos["magic"].iloc[0] == 5
    assert client.orders().empty


def test_a_dropped_answer_is_reconciled_not_resent(simulator: Simulator, client: MT5RestClient) -> None:
    simulator.faults.drop_next, simulator.faults.only_route = 1, "/order"
    res = client.send_order("BTCUSD", "buy", 0.2, magic=42)
    assert res.reconciled and res.retcode == c.RETCODE_DONE
    positions = client.positions()
    assert len(positions) == 1 and positions["magic"].iloc[0] == 42
    assert positions["comment"].iloc[0] == order_comment(res.idempotency_key)


def test_a_refused_attempt_is_resent_once_with_the_same_key(simulator: Simulator, client: MT5RestClient) -> None:
    simulator.faults.fail_next, simulator.faults.only_route = 1, "/order"
    res = client.send_order("BTCUSD", "sell", 0.1, idempotency_key="signal-2024-02-15T12:00")
    assert res.retcode == c.RETCODE_DONE and not res.reconciled
    assert len(client.positions()) == 1


def test_slow_server_never_gets_a_duplicate_order(make_simulator: Callable[..., Simulator],
                                                  make_client: Callable[..., MT5RestClient]) -> None:
    """Every answer times out; the client gives up with a typed error, yet the order exists once."""
    sim = make_simulator(faults=Faults(latency_ms=400))
    client = make_client(sim.url, read_timeout=0.15, retries=0, order_retries=2)
    with pytest.raises(OrderStateUnknownError, match="check the terminal"):
        client.send_order("BTCUSD", "buy", 0.1, magic=77)
    deadline = time.monotonic() + 5
    while len(sim.market.positions(None)) == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(1.0)  # let every in-flight retry reach the server
    assert len(sim.market.positions(None)) == 1


def test_close_position_reconciles_a_dropped_answer(simulator: Simulator, client: MT5RestClient) -> None:
    client.send_order("BTCUSD", "buy", 0.3, magic=1)
    ticket = int(client.positions()["ticket"].iloc[0])
    simulator.faults.drop_next, simulator.faults.only_route = 1, "/close_position"
    res = client.close_position(ticket, 0.1)
    assert res.reconciled
    pos = client.positions()
    assert len(pos) == 1 and pos["volume"].iloc[0] == pytest.approx(0.2)  # closed 0.1 once, not twice


def test_cancel_pending_order(client: MT5RestClient) -> None:
    bid = client.latest_tick("BTCUSD")["bid"]
    placed = client.send_order("BTCUSD", "sell", 0.1, kind="limit", price=round(bid * 1.2, 2))
    assert len(client.orders()) == 1
    assert client.cancel_order(placed.order).retcode == c.RETCODE_DONE
    assert client.orders().empty
    with pytest.raises(OrderRejectedError):
        client.cancel_order(placed.order)


def test_injected_session_is_used_and_left_open(simulator: Simulator) -> None:
    import requests

    seen: list[str] = []
    session = requests.Session()
    session.hooks["response"].append(lambda r, *a, **k: seen.append(r.request.path_url))
    with MT5RestClient(simulator.url, DEV_TOKEN, session=session, server_time_offset_hours=2) as client:
        client.account_info()
        client.latest_tick("BTCUSD")
    assert seen == ["/account_info", "/symbol_info_tick/BTCUSD"]
    assert session.get(simulator.url + "/health", timeout=5).json()["status"] == "ok"  # still open
    session.close()


def test_stop_loss_closes_on_the_first_real_bar_that_reaches_it(simulator: Simulator, client: MT5RestClient,
                                                               sample_bars: pd.DataFrame) -> None:
    now = pd.Timestamp(REPLAY_START)
    future = sample_bars.loc[now:].iloc[:240]
    sl = round(float(future["low"].min()) + 0.5, 2)
    opened = client.send_order("BTCUSD", "buy", 0.1, sl=sl, magic=3)
    hit = future.index[(future["low"] <= sl).to_numpy()][0]
    simulator.advance(int((hit - now) / pd.Timedelta(minutes=1)) + 1)
    assert client.positions().empty
    exit_deal = client.history_deals().iloc[-1]
    assert exit_deal["comment"] == "sl" and exit_deal["entry"] == c.DEAL_ENTRY_OUT
    assert exit_deal["price"] == min(sl, future.loc[hit, "open"])
    assert exit_deal["time"] == hit + pd.Timedelta(seconds=59)
    assert exit_deal["profit"] == pytest.approx((exit_deal["price"] - opened.price) * 0.1, abs=0.01)


def test_step_on_poll_moves_one_bar_per_poll(make_simulator: Callable[..., Simulator],
                                             make_client: Callable[..., MT5RestClient]) -> None:
    sim = make_simulator(settings=SimSettings(start=REPLAY_START, step_on_poll=True))
    client = make_client(sim.url, server_time_offset_hours=2)
    first, second = client.bars("BTCUSD", "M1", 1), client.bars("BTCUSD", "M1", 1)
    assert second.index[-1] - first.index[-1] == pd.Timedelta(minutes=1)


def test_a_garbled_answer_after_execution_is_reconciled_not_resent(simulator: Simulator,
                                                                   client: MT5RestClient) -> None:
    """A proxy page (HTTP 200, HTML) after the order ran must not lead to a second order."""
    simulator.faults.garble_next, simulator.faults.only_route = 1, "/order"
    res = client.send_order("BTCUSD", "buy", 0.3, magic=43)
    assert res.reconciled and res.retcode == c.RETCODE_DONE
    positions = client.positions()
    assert len(positions) == 1 and positions["volume"].iloc[0] == pytest.approx(0.3)


def test_garbled_answers_everywhere_end_in_order_state_unknown(simulator: Simulator,
                                                               make_client: Callable[..., MT5RestClient]) -> None:
    simulator.faults.garble_next, simulator.faults.only_route = 1, "/order"
    client = make_client(simulator.url, order_retries=0)
    with pytest.raises(OrderStateUnknownError, match="check the terminal"):
        client.send_order("BTCUSD", "sell", 0.1, magic=44)
    assert len(simulator.market.positions(None)) == 1
