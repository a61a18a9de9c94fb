"""Show and change the RiskManager's state: ``python -m engine.risk_cli status|reset|halt|reduce``.

    python -m engine.risk_cli status                                  # the embedded default file
    python -m engine.risk_cli reset --by alice --note "reviewed the losses"
    python -m engine.risk_cli --postgres --host db.lan --user engine status

``reset`` puts a HALTED (or REDUCING) account back to ACTIVE and rebases the peak and the day's start
on the current balance; ``halt`` and ``reduce`` latch those states by hand. Each records who (``--by``)
and when in the store; a running engine picks the change up at its next check. The database password
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
from engine.trading.risk_state import RiskStateStore, RiskStatus

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
    return p


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
            changed = replace(rules.operator_set(state, ACTIONS[args.command], args.by, dt.datetime.now(dt.UTC),
                                                 limits, args.note), version=state.version + 1)
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
