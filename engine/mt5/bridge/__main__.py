"""``python -m engine.mt5.bridge``: serve the MT5 REST contract from the terminal on this (Windows) host.

The bearer token and the account password are read from environment variables, never from the
command line (which other users can see in the process list).
"""

from __future__ import annotations

import argparse
import logging
import os
import ssl
import sys
from collections.abc import Sequence

from engine.errors import EngineError
from engine.mt5.bridge.backend import MT5Backend
from engine.mt5.server import CONNECTION_TIMEOUT, MAX_CONNECTIONS, ContractServer

_LOOPBACK = ("127.0.0.1", "localhost", "::1")

log = logging.getLogger("engine.mt5.bridge")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m engine.mt5.bridge",
                                description="MT5 REST bridge (docs/mt5_rest_api.md) over the MetaTrader5 package")
    p.add_argument("--host", default="127.0.0.1", help="bind address; expose beyond loopback only with TLS")
    p.add_argument("--port", type=int, default=8443)
    p.add_argument("--api-key-env", default="MT5_BRIDGE_API_KEY", help="env var holding the bearer token")
    p.add_argument("--certfile", help="TLS certificate (PEM); with --keyfile enables https")
    p.add_argument("--keyfile", help="TLS private key (PEM)")
    p.add_argument("--insecure-http", action="store_true",
                   help="serve plain HTTP on a non-loopback address (tokens and orders in clear text); "
                        "without it the bridge refuses to")
    p.add_argument("--max-connections", type=int, default=MAX_CONNECTIONS,
                   help=f"open connections served at once; more get 503 (default {MAX_CONNECTIONS})")
    p.add_argument("--idle-timeout", type=float, default=CONNECTION_TIMEOUT,
                   help=f"seconds an idle connection is kept (default {CONNECTION_TIMEOUT:g})")
    p.add_argument("--symbols", default="", help="comma-separated symbols to serve (default: any)")
    p.add_argument("--max-bars", type=int, default=10_000, help="cap on bars per request (terminal max bars)")
    p.add_argument("--terminal-path", help="terminal64.exe path for MetaTrader5.initialize")
    p.add_argument("--login", type=int, help="account login (else the terminal's current account)")
    p.add_argument("--server", help="broker trade server name")
    p.add_argument("--password-env", default="MT5_PASSWORD", help="env var holding the account password")
    return p


def build(args: argparse.Namespace) -> ContractServer:
    token = os.environ.get(args.api_key_env, "")
    if not token:
        raise SystemExit(f"set the bearer token in ${args.api_key_env} (any long random string; clients use it "
                         "as connector.api_key)")
    if args.host not in _LOOPBACK and not args.certfile:
        if not args.insecure_http:
            raise SystemExit(f"refusing to serve plain HTTP on {args.host}: the token and orders would travel in "
                             "clear text. Give --certfile and --keyfile, bind 127.0.0.1, or pass --insecure-http "
                             "on a network you trust")
        log.warning("serving on %s without TLS (--insecure-http): tokens and orders travel in clear text", args.host)
    init: dict[str, object] = {}
    if args.terminal_path:
        init["path"] = args.terminal_path
    if args.login:
        init["login"] = args.login
        init["password"] = os.environ.get(args.password_env, "")
    if args.server:
        init["server"] = args.server
    backend = MT5Backend(symbols=tuple(s for s in args.symbols.split(",") if s), initialize_kwargs=init)
    backend.connect()
    context = None
    if args.certfile:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(args.certfile, args.keyfile)
    return ContractServer(backend, api_key=token, host=args.host, port=args.port, max_bars=args.max_bars,
                          ssl_context=context, max_connections=args.max_connections,
                          connection_timeout=args.idle_timeout)


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args = parser().parse_args(argv)
    try:
        server = build(args)
    except EngineError as exc:
        print(f"engine.mt5.bridge: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    print(f"engine MT5 bridge on {server.url}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.backend.shutdown()  # type: ignore[attr-defined]
        server.stop(timeout=5)
    return 0


if __name__ == "__main__":
    sys.exit(main())
