"""task=live: a saved model trading closed bars, on the simulator (``task.mode=paper``, default) or a terminal.

Wiring only (the loop is :mod:`engine.trading.live`): the model from a path or the MLflow Model Registry; the
features it was trained on, from the recipe task=train saves with it; the connector (the embedded simulator
replays from ``task.replay_start`` at ``task.replay_speed``, or as fast as it goes with ``smoke=true``); the
RiskManager with its state store and the audit store next to the configured storage (Parquet files under
``${paths.data}`` or the TimescaleDB/PostgreSQL database); a heartbeat line and MLflow metrics.

``task.mode=live`` refuses to start unless the connector is a bridge over TLS, its API key comes from the
secrets store and ``task.confirm_live=true``; ``paper`` refuses to trade anything but the simulator. Neither
trades through the metatrader5-quant-server bridge (configured or detected from ``/health``): it lacks the
routes the loop needs, so the run is refused before any order (exit 2, the fix in one line).
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np
from omegaconf import DictConfig, OmegaConf
from rich.console import Console

from engine import timeframes
from engine.config.build import build
from engine.data.features import FeatureEngineering
from engine.data.incremental import IncrementalFeatures, feature_names, warmup_bars
from engine.data.indicator_state import Atr
from engine.errors import ConfigError, OperationalError
from engine.mt5.client import MT5RestClient
from engine.mt5.dialect import QUANT_SERVER
from engine.tasks.backtest_wiring import backtest_settings, risk_limits
from engine.tasks.common import job_run
from engine.tasks.feed_wiring import stop_signals
from engine.tasks.model_wiring import MODEL_FILE, model_dir
from engine.timeframes import Timeframe
from engine.trading.audit import AuditLog
from engine.trading.live import Heartbeat, LiveLoop, LiveSettings
from engine.trading.live_feed import BrokerBarFeed, PollClock, ReplayClock
from engine.trading.risk import RiskManager

log = logging.getLogger("engine.tasks.live")
SIMULATOR = "engine.mt5.sim.embedded.embedded_client"
SIMULATOR_VERSION = "engine-simulator"


def check_mode(cfg: DictConfig) -> None:
    """Refuse, before any work, a live run without TLS, a secret API key and an explicit confirmation."""
    task, node = cfg.task, cfg.connector
    if task.mode != "live":
        return
    if node.get("_target_") == SIMULATOR:
        raise ConfigError("task.mode", "mode=live trades a real account through the bridge; pick connector=mt5_rest "
                                       "(paper trading on the simulator is task.mode=paper)")
    if urlsplit(str(node.base_url)).scheme != "https":
        raise ConfigError("connector.base_url", "mode=live refuses a bridge without TLS; use https://")
    raw = str(node._get_node("api_key")._value())
    if not (OmegaConf.is_interpolation(node, "api_key") and "secret:" in raw):
        raise ConfigError("connector.api_key", "mode=live takes the API key from the secrets store only: "
                                               "${secret:mt5_api_key} (python -m engine.secrets set mt5_api_key)")
    if not task.confirm_live:
        raise ConfigError("task.confirm_live", "mode=live sends real orders; confirm with task.confirm_live=true")


def check_dialect(dialect: str | None, how: str = "configured") -> None:
    """Refuse the quant-server bridge: without /account_info and pending-order reads every entry would be
    refused by the risk check, and without idempotency keys a lost order could not be looked up safely."""
    if dialect == QUANT_SERVER:
        raise ConfigError("connector.dialect", f"task=live cannot trade through the metatrader5-quant-server bridge "
                                               f"({how}): it lacks /account_info, /orders_get and idempotency keys, so "
                                               "every entry would be refused; run python -m engine.mt5.bridge on the "
                                               "terminal's host and point connector.base_url at it")


def model_reference(cfg: DictConfig) -> str:
    """task.model, else the model a single task=train run published for task.model_name."""
    return str(cfg.task.model) if cfg.task.model else str(model_dir(cfg) / MODEL_FILE)


def feature_recipe(cfg: DictConfig, pipe: Any) -> tuple[FeatureEngineering, Timeframe]:
    """The features and bar size the model was trained with: its saved recipe, else the config's features."""
    recipe = pipe.metadata.get("recipe") or {}
    if recipe.get("features"):
        settings = {k: tuple(v) if isinstance(v, list) else v for k, v in recipe["features"].items()}
        features = FeatureEngineering(**settings)
        bar = timeframes.parse(recipe["bar_timeframe"], key="task.model")
    else:
        features = build(cfg.features, FeatureEngineering, key="features")
        bar = timeframes.parse(str(pipe.metadata.get("bar_size") or cfg.timeframe), key="task.model")
    names = feature_names(features)
    if names != list(pipe.feature_names_):
        raise ConfigError("features", f"the model was trained on {len(pipe.feature_names_)} features "
                                      f"({', '.join(pipe.feature_names_[:4])}, ...) but the live feature set gives "
                                      f"{len(names)} ({', '.join(names[:4])}, ...); use the model's features group")
    if timeframes.parse(features.timeframes[0], key="features.timeframes") != bar:
        raise ConfigError("features.timeframes", f"start with the model's bar size {bar.mt5}")
    return features, bar


class PipelinePredictor:
    """The model's class probabilities for one input, without the per-call checks MLPipeline makes (the
    feature list was checked once, when the loop was built)."""

    def __init__(self, pipe: Any) -> None:
        self.pipe, self.family, self.dtype = pipe, pipe.family, pipe.family.dtype

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        pipe = self.pipe
        return self.family.predict_proba(pipe.model_, pipe.scaler_, np.asarray(x, dtype=self.dtype), pipe.output_dim)


def build_connector(cfg: DictConfig) -> MT5RestClient:
    node = cfg.connector
    if node.get("_target_") == SIMULATOR:  # the loop steps its replay clock; start where the task says
        node = OmegaConf.merge(node, {"speed": 0.0, "start": node.get("start") or cfg.task.replay_start})
    return build(node, MT5RestClient, key="connector")


def _storage_params(cfg: DictConfig) -> dict[str, Any] | None:
    """PostgreSQL connection arguments of storage=timescaledb; None for the Parquet default."""
    node = cfg.storage
    if not str(node.get("_target_", "")).endswith("TimescaleDBClient"):
        return None
    keys = ("host", "port", "dbname", "user", "password", "sslmode", "sslrootcert", "connect_timeout")
    return {k: node[k] for k in keys if node.get(k) is not None}


def stores(cfg: DictConfig) -> tuple[Any, Any]:
    """(audit store, risk state store) beside the configured storage."""
    from engine.storage.audit import ParquetAuditStore, PostgresAuditStore
    from engine.storage.risk_state import JsonFileRiskStore, PostgresRiskStore

    params = _storage_params(cfg)
    if params is None:
        data = Path(str(cfg.paths.data))
        return (ParquetAuditStore(data / "audit", fsync=bool(cfg.task.audit_fsync)),
                JsonFileRiskStore(data / "risk" / "state.json"))
    return PostgresAuditStore(**params), PostgresRiskStore(**params)


def session_name(cfg: DictConfig, bar: Timeframe) -> str:
    """task.session, else one per strategy instance; the embedded simulator opens a fresh account in every
    process, so each of its runs is a session of its own (nothing to resume, no risk history to inherit)."""
    if cfg.task.session:
        return str(cfg.task.session)
    name = f"{cfg.task.model_name}-{cfg.symbol}-{bar.mt5}-{cfg.task.magic}"
    if cfg.connector.get("_target_") == SIMULATOR:
        name += dt.datetime.now(dt.UTC).strftime("-paper-%Y%m%dT%H%M%S")
    return re.sub(r"[^A-Za-z0-9_.@+-]", "_", name)


def run(cfg: DictConfig) -> dict[str, float]:
    from engine.models.pipeline import MLPipeline
    from engine.tracking.registry import load_reference

    console = Console(stderr=True, soft_wrap=True)
    check_mode(cfg)
    check_dialect(cfg.connector.get("dialect"))
    decision, limits = backtest_settings(cfg), risk_limits(cfg)
    if decision.sizing == "rebalance":
        raise ConfigError("backtest.sizing", "the live loop holds positions in lots: use equity, lots or risk")
    with job_run(cfg, tags={"mode": str(cfg.task.mode)}) as tracked, tempfile.TemporaryDirectory() as tmp:
        path, model_info = load_reference(model_reference(cfg), tracked.tracking_uri or str(cfg.tracking.uri), Path(tmp))
        pipe = MLPipeline.load(path)
        if pipe.is_net:
            import torch

            # One decision is one window: a tiny forward pass that one thread runs fastest; more threads only
            # add synchronisation, and on a busy machine they make the latency of every bar erratic.
            torch.set_num_threads(1)
        features, bar = feature_recipe(cfg, pipe)
        tracked.set_tags({k: v for k, v in model_info.items() if v is not None})
        session = session_name(cfg, bar)
        warmup = int(cfg.task.warmup or warmup_bars(features, pipe.seq_len_))
        settings = LiveSettings(symbol=str(cfg.symbol), bar_seconds=bar.seconds, session=session,
                                magic=int(cfg.task.magic), deviation=int(cfg.task.deviation), warmup=warmup,
                                max_signal_age=cfg.task.max_signal_age, flatten_on_stop=bool(cfg.task.flatten_on_stop),
                                heartbeat_seconds=float(cfg.task.heartbeat_seconds), freeze_gc=True,
                                unsettled_alarm_seconds=float(cfg.task.unsettled_alarm_seconds),
                                max_bars=int(cfg.task.smoke_bars) if cfg.smoke else cfg.task.max_bars)
        client = build_connector(cfg)
        try:
            metrics = _trade(cfg, console, tracked, client, settings, decision, limits, pipe, features, bar,
                             {**model_info, "model_type": pipe.model_type, "features": len(pipe.feature_names_)})
        finally:
            client.close()
    return metrics


def _trade(cfg: DictConfig, console: Console, tracked: Any, client: MT5RestClient, settings: LiveSettings,
           decision: Any, limits: Any, pipe: Any, features: FeatureEngineering, bar: Timeframe,
           describe: dict[str, Any]) -> dict[str, float]:
    simulator = getattr(client, "simulator", None)
    version = str(client.health().get("version", ""))
    check_dialect(client.dialect, f"detected from {client.base_url}/health")  # before any order or risk state
    if cfg.task.mode == "paper" and not version.startswith(SIMULATOR_VERSION):
        raise OperationalError(f"task.mode=paper trades only on the simulator, and {client.base_url} answers as "
                               f"{version or 'something else'}; a real terminal needs task.mode=live")
    if simulator is not None:
        pace = 0.0 if cfg.smoke or not cfg.task.replay_speed else bar.seconds / float(cfg.task.replay_speed)
        clock: Any = ReplayClock(simulator, bar, pace)
    else:
        clock = PollClock(float(cfg.task.poll_interval))
    feed = BrokerBarFeed(client, settings.symbol, bar, volume=str(cfg.task.volume))
    audit_store, risk_store = stores(cfg)

    def risk_clock() -> dt.datetime:  # the broker's time: a replay's trading days are the replayed ones
        return feed.now.to_pydatetime() if feed.now is not None else dt.datetime.now(dt.UTC)

    risk = RiskManager.from_limits(client, limits, store=risk_store, key=settings.session, clock=risk_clock)
    # Bound to the client: no order of this process can reach the broker without the risk check, whatever
    # code path sends it (the loop's own gate below only records the refusal's reason in the audit trail).
    client.guard_orders(risk)
    equity_start = float(client.account_info()["equity"])

    def on_heartbeat(beat: Heartbeat) -> None:
        console.print(beat.line(), highlight=False)
        tracked.log_metrics({"equity": beat.equity, "position": beat.position, "lag_seconds": beat.lag_seconds,
                             "orders": float(beat.orders)}, step=beat.bars)

    try:
        loop = LiveLoop(settings=settings, decision=decision,
                        features=lambda history: IncrementalFeatures(features, history, seq_len=pipe.seq_len_),
                        model=PipelinePredictor(pipe), feed=feed, clock=clock, broker=client, risk=risk,
                        audit=AuditLog(audit_store, settings.session), atr=Atr(decision.atr_period),
                        on_heartbeat=on_heartbeat, describe=describe)
        console.print(f"[bold]live[/] {cfg.task.mode}: {pipe.model_type} on {settings.symbol} {bar.mt5} via "
                      f"{client.base_url}; session {settings.session}, audit {audit_store.describe()}, risk state "
                      f"{risk_store.describe()} (Ctrl-C or SIGTERM stops after the bar in progress)")
        start = time.monotonic()
        with stop_signals() as stop:
            stats = loop.run(stop)
        beat = loop.heartbeat()
        console.print(beat.line(), highlight=False)
    finally:
        audit_store.close()
        getattr(risk_store, "close", lambda: None)()
    lat = np.asarray(stats.latencies) * 1e3
    metrics = {"bars": float(stats.bars), "decisions": float(stats.decisions), "stale_bars": float(stats.stale_bars),
               **{k: float(v) for k, v in loop.orders.counts.items()}, "stops": float(stats.stops),
               "errors": float(stats.errors), "equity_end": beat.equity, "seconds": time.monotonic() - start,
               "order_latency_p50_ms": float(np.percentile(lat, 50)) if lat.size else float("nan"),
               "order_latency_p99_ms": float(np.percentile(lat, 99)) if lat.size else float("nan")}
    metrics |= {"equity_start": equity_start, "pnl": beat.equity - equity_start}
    tracked.log_metrics(metrics)
    counts = loop.orders.counts
    console.print(f"[bold]live[/]: {stats.bars} bars, {stats.decisions} decisions, {counts['orders']} orders "
                  f"({counts['orders_failed']} failed, {counts['orders_unknown']} of unknown fate), "
                  f"{counts['risk_refusals']} refused, {stats.stops} stops; session {settings.session}")
    return metrics


__all__ = ["check_dialect", "check_mode", "feature_recipe", "model_reference", "run", "stores"]
