"""Show and change the RiskManager's state: ``python -m engine.risk_cli status|reset|halt|reduce``.

    python -m engine.risk_cli status                                  # the embedded default file
    python -m engine.risk_cli reset --by alice --note "reviewed the losses"
    python -m engine.risk_cli --postgres --host db.lan --user engine status

``reset`` puts a HALTED (or REDUCING) account back to ACTIVE and rebases the peak and the day's start
on the current balance; ``halt`` and ``reduce`` latch those states by hand. ``clear-order --order KEY``
lifts the block an order of unknown fate puts on new exposure (``status`` lists them under
``unresolved_orders``), once the terminal shows what became of it; ``reset`` does not lift it.
``settle --position TICKET --profit X`` books a closed position whose closing deal never reached the deal
history the engine reads (``status`` lists them under ``unsettled_positions``): X is its profit net of
commission and swap, as the terminal shows it (negative for a loss); its block on new entries is lifted in
the same write, and its deals, should they surface later, are never booked on top. Each records
who (``--by``) and when in the store; a running engine picks the change up at its next check. The database password
comes from the environment variable named by ``--password-env`` (never from the command line).
Exit codes: 0 done (``status``: ACTIVE), 1 ``status`` found REDUCING or HALTED, 2 usage or store error.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from engine.errors import EngineError, OperationalError
from engine.storage.risk_state import JsonFileRiskStore, PostgresRiskStore
from engine.trading import risk_rules as rules
from engine.trading.risk import metrics
from engine.trading.risk_rules import RiskLimits
from engine.trading.risk_state import RiskState, RiskStateStore, RiskStatus

DEFAULT_FILE = "data/risk/state.json"  # under ENGINE_ROOT (the project directory by default)
ACTIONS = {"reset": RiskStatus.ACTIVE, "halt": RiskStatus.HALTED, "reduce": RiskStatus.REDUCING}


def default_file() -> Path:
    return Path(os.environ.get("ENGINE_ROOT") or ".") / DEFAULT_FILE


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m engine.risk_cli", description=__doc__.split("\n")[0])
    p.add_argument("--key", default="default", help="state key in the store (default: default)")
    p.add_argument("--file", default=None, help=f"JSON state file (default: $ENGINE_ROOT/{DEFAULT_FILE})")
    p.add_argument("--postgres", action="store_true", help="use the PostgreSQL/TimescaleDB table instead")
    p.add_argument("--host", default="localhost")
    p.add_argument("--port", type=int, default=5432)
    p.add_argument("--dbname", default="engine")
    p.add_argument("--user", default="engine")
    p.add_argument("--password-env", default="ENGINE_DB_PASSWORD",
                   help="environment variable holding the database password (default ENGINE_DB_PASSWORD)")
    p.add_argument("--sslmode", default="require")
    p.add_argument("--sslrootcert", default=None)
    p.add_argument("--table", default="risk_state")
    p.add_argument("--day-offset-hours", type=float, default=0.0,
                   help="the trading day's boundary, as configured in risk.day_offset_hours (default 0 = UTC)")
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("status", help="print the state as JSON")
    for name, status in ACTIONS.items():
        action = sub.add_parser(name, help=f"set {status.name}, recording who and when")
        action.add_argument("--by", required=True, help="who does it (recorded in the store)")
        action.add_argument("--note", default="", help="why (recorded with the state's reason)")
    clear = sub.add_parser("clear-order", help="lift the block of an order of unknown fate, after checking the "
                                               "terminal for it (recording who and when)")
    clear.add_argument("--order", required=True, help="the order's key, as `status` lists it")
    clear.add_argument("--by", required=True, help="who checked the terminal (recorded in the store)")
    settle = sub.add_parser("settle", help="book a closed position whose closing deal the engine cannot find, "
                                           "from the terminal's figure (recording who and when)")
    settle.add_argument("--position", required=True, type=int, help="the position's ticket, as `status` lists it")
    settle.add_argument("--profit", required=True, type=float,
                        help="its profit net of commission and swap in the account currency (negative: a loss)")
    settle.add_argument("--by", required=True, help="who read it on the terminal (recorded in the store)")
    return p


def _changed(args: argparse.Namespace, state: RiskState, limits: RiskLimits) -> RiskState:
    now = dt.datetime.now(dt.UTC)
    if args.command in ("clear-order", "settle") and not args.by.strip():
        raise ValueError(f"{args.command} needs a name (--by NAME): the store records who did it")
    if args.command == "settle":
        if args.position not in state.unsettled_positions:
            raise OperationalError(f"no unsettled position {args.position} under key {args.key!r}; `status` lists "
                                   f"them: {sorted(state.unsettled_positions) or 'none'}")
        return rules.settle_by_hand(state, args.position, args.profit, now, limits, args.by.strip())
    if args.command == "clear-order":
        if args.order not in state.unresolved_orders:
            raise OperationalError(f"no order {args.order!r} of unknown fate under key {args.key!r}; `status` lists "
                                   f"them: {sorted(state.unresolved_orders) or 'none'}")
        return rules.release_order(state, args.order, now, by=args.by.strip())
    return rules.operator_set(state, ACTIONS[args.command], args.by, now, limits, args.note)


def _store(args: argparse.Namespace) -> RiskStateStore:
    if not args.postgres:
        return JsonFileRiskStore(args.file or default_file())
    password = os.environ.get(args.password_env)
    if not password:
        # Name the variable only when it looks like one: a password typed as --password-env is not echoed.
        name = f"${args.password_env}" if re.fullmatch(r"[A-Z_][A-Z0-9_]{0,63}", args.password_env) else \
            "the variable named by --password-env"
        raise OperationalError(f"the database password is not set: export it in {name}")
    return PostgresRiskStore(args.host, args.port, args.dbname, args.user, password, sslmode=args.sslmode,
                             sslrootcert=args.sslrootcert, table=args.table)


def run(args: argparse.Namespace) -> int:
    store = _store(args)
    try:
        limits = RiskLimits(day_offset_hours=args.day_offset_hours)
        state = store.load(args.key)
        if state is None:
            print(f"no risk state for key {args.key!r} in {store.describe()}: the engine has not run yet",
                  file=sys.stderr)
            return 2
        if args.command == "status":
            shown = metrics(rules.roll_day(state, dt.datetime.now(dt.UTC), limits), limits)
            print(json.dumps(shown | {"store": store.describe(), "key": args.key}, indent=2))
            return 0 if shown["state"] == RiskStatus.ACTIVE.name else 1
        for _ in range(5):  # compare-and-set: retry when the engine wrote in between
            changed = replace(_changed(args, state, limits), version=state.version + 1)
            if store.save(args.key, changed):
                print(json.dumps(metrics(changed, limits) | {"store": store.describe(), "key": args.key},
                                 indent=2))
                return 0
            state = store.load(args.key) or state
        print("the state kept changing under this command; try again", file=sys.stderr)
        return 2
    finally:
        close = getattr(store, "close", None)
        if callable(close):
            close()


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return run(args)
    except (EngineError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
