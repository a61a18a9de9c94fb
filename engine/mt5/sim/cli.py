"""``python -m engine.mt5.sim``: serve the simulator on this host.

Its options are generated from :class:`SimSettings` (one flag per field, with the field's default and
bounds), so the command line, the config schema and the embedded client cannot drift apart. The bearer
token is read from an environment variable, never from the command line.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import signal
import types
import typing
from collections.abc import Sequence
from typing import Any

from engine.errors import ConfigError
from engine.mt5.sim.embedded import Simulator
from engine.mt5.sim.settings import DEV_TOKEN, SimSettings


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m engine.mt5.sim",
                                description="MT5 simulator speaking the REST contract (docs/mt5_rest_api.md) "
                                            "over real data")
    p.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8765, help="port; 0 picks a free one (default 8765)")
    p.add_argument("--api-key-env", default="MT5_API_KEY",
                   help=f"environment variable holding the bearer token (default MT5_API_KEY; "
                        f"unset -> the dev token {DEV_TOKEN!r})")
    group = p.add_argument_group("simulator settings (engine.mt5.sim.SimSettings)")
    hints = typing.get_type_hints(SimSettings)
    for spec in dataclasses.fields(SimSettings):
        flag = "--" + spec.name.replace("_", "-")
        text = _help_text(spec)
        if hints[spec.name] is bool:
            group.add_argument(flag, action=argparse.BooleanOptionalAction, default=spec.default, help=text)
        else:
            group.add_argument(flag, type=_scalar(hints[spec.name]), default=spec.default, help=text)
    return p


def _scalar(hint: Any) -> type:
    """``int`` for ``int`` and ``int | None`` alike: None is the default, never typed."""
    if isinstance(hint, types.UnionType):
        return next(arg for arg in typing.get_args(hint) if arg is not type(None))
    return hint


def _help_text(spec: dataclasses.Field[Any]) -> str:
    bounds = spec.metadata.get("bounds") or {}
    signs = {"gt": ">", "ge": ">=", "lt": "<", "le": "<="}
    limits = ", ".join(f"{signs[name]} {limit}" for name, limit in bounds.items() if limit is not None)
    text = spec.metadata.get("help", "")
    return f"{text} ({limits}; default %(default)s)" if limits else f"{text} (default %(default)s)"


def settings_from(args: argparse.Namespace) -> SimSettings:
    return SimSettings(**{spec.name: getattr(args, spec.name) for spec in dataclasses.fields(SimSettings)})


def main(argv: Sequence[str] | None = None) -> int:
    cli = parser()
    args = cli.parse_args(argv)
    try:
        settings = settings_from(args)
    except ConfigError as exc:
        cli.error(f"--{exc.key.replace('_', '-')}: {exc.problem}")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    token = os.environ.get(args.api_key_env)
    sim = Simulator(settings=settings, api_key=token or DEV_TOKEN, host=args.host, port=args.port)
    signal.signal(signal.SIGTERM, lambda *_: sim.server.interrupt())
    print(f"engine MT5 simulator on {sim.url} (replay at {sim.market.now_utc().isoformat()}; "
          f"token from ${args.api_key_env}{'' if token else ' unset: dev token'})", flush=True)
    try:
        sim.server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        sim.stop()
    return 0
