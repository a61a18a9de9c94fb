"""``python -m engine.secrets``: create, inspect, rotate and read encrypted secrets files.

Keys come only from environment variables (``--key-env`` names the variable, default CONFIG_AES_KEY);
no option takes a key or a secret value on the command line, where ``ps`` and shell history would see
it. Decrypted values are printed only with ``--show``; ``set`` reads the value from stdin.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from engine.errors import SecretError, SecretsFileError
from engine.secrets import formats
from engine.secrets.keys import DEFAULT_KEY_ENV, check_env_name, generate_key, key_from_env
from engine.secrets.store import SecureConfig

PROG = "python -m engine.secrets"
NEW_KEY_ENV = "CONFIG_AES_KEY_NEW"
MASK = "***"


class _Parser(argparse.ArgumentParser):
    """argparse echoes unrecognised arguments; a key pasted onto the command line must not be printed.
    Abbreviations are off so ``--key`` is not taken for ``--key-env``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        if message.startswith("unrecognized arguments"):
            message = ("unrecognized arguments (not shown, they may hold a secret); keys come only from the "
                       "environment and values from stdin, see --help")
        super().error(message)


def _parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog=PROG, description="Create, inspect, rotate and read encrypted secrets files.",
        epilog="The key is read from the environment, never from argv. Formats: v1 (AES-256-GCM, "
               "authenticated, default) and seed (16-byte IV + base64 AES-256-CBC, read for compatibility). "
               "See docs/secrets.md.")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def with_key(sp: argparse.ArgumentParser) -> argparse.ArgumentParser:
        sp.add_argument("--key-env", default=DEFAULT_KEY_ENV, metavar="NAME",
                        help=f"environment variable holding the key (default {DEFAULT_KEY_ENV})")
        return sp

    sub.add_parser("keygen", help="print a new random key (base64:...) to export as CONFIG_AES_KEY")

    sp = with_key(sub.add_parser("encrypt", help="encrypt a plaintext JSON object into a secrets file"))
    sp.add_argument("plaintext", help="JSON file with an object of name -> value ('-' reads stdin)")
    sp.add_argument("-o", "--out", required=True, help="secrets file to write (mode 0600)")
    sp.add_argument("--format", choices=formats.FORMATS, default=formats.DEFAULT_FORMAT)
    sp.add_argument("--force", action="store_true", help="overwrite an existing secrets file")

    sp = with_key(sub.add_parser("decrypt", help="show names (values masked), or write/print the plaintext"))
    sp.add_argument("file")
    group = sp.add_mutually_exclusive_group()
    group.add_argument("--show", action="store_true", help="print the decrypted JSON with its values")
    group.add_argument("-o", "--out", help="write the decrypted JSON to this file (mode 0600)")

    sp = with_key(sub.add_parser("rotate", help="re-encrypt a file under a new key and/or into another format"))
    sp.add_argument("file")
    sp.add_argument("--new-key-env", default=NEW_KEY_ENV, metavar="NAME",
                    help=f"environment variable holding the new key (default {NEW_KEY_ENV}; when unset the "
                         "key stays and only the format changes)")
    sp.add_argument("--format", choices=formats.FORMATS, default=formats.DEFAULT_FORMAT,
                    help="format to write (default v1)")

    sp = with_key(sub.add_parser("get", help="check that a secret exists; print it only with --show"))
    sp.add_argument("file")
    sp.add_argument("name")
    sp.add_argument("--show", action="store_true", help="print the value to stdout")

    sp = with_key(sub.add_parser("set", help="add or replace one secret, reading its value from stdin"))
    sp.add_argument("file")
    sp.add_argument("name")
    sp.add_argument("--format", choices=formats.FORMATS, default=None,
                    help="format of a new file (default v1); an existing file keeps its own")

    sp = with_key(sub.add_parser("names", help="list the names in a file and its format"))
    sp.add_argument("file")
    return p


def _read_plaintext(source: str) -> dict[str, Any]:
    if source == "-":
        text = sys.stdin.read()
    else:
        try:
            text = Path(source).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            problem = getattr(exc, "strerror", None) or type(exc).__name__
            raise SecretsFileError(f"cannot read plaintext file {source}: {problem}") from None
    return formats.decode_plaintext(text.encode("utf-8"))


def _write_private(path: Path, text: str) -> None:
    # Narrow the mode before any plaintext is written (an existing file keeps its old mode on open), and
    # refuse to follow a symlink planted where the plaintext goes.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    except OSError as exc:
        raise SecretsFileError(f"cannot write plaintext to {path}: {exc.strerror} (symlinks are refused)") from None
    os.fchmod(fd, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)


def _read_value() -> str:
    if sys.stdin.isatty():
        return getpass.getpass("value (not echoed): ")
    value = sys.stdin.read()
    return value[:-1] if value.endswith("\n") else value  # `echo x |` and here-strings add one newline


def run(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    out = sys.stdout
    if args.command == "keygen":
        print(generate_key(), file=out)
        return 0
    check_env_name(args.key_env)
    if args.command == "encrypt":
        target = Path(args.out)
        if target.exists() and not args.force:
            raise SecretsFileError(f"{target} exists; pass --force to overwrite it, or use `rotate`/`set`")
        data = _read_plaintext(args.plaintext)
        SecureConfig(target, key_env=args.key_env).write(data, args.format)
        print(f"wrote {target} ({args.format}, {len(data)} secrets: {', '.join(sorted(data))})", file=sys.stderr)
        return 0
    if args.command == "rotate":
        check_env_name(args.new_key_env)
        store = SecureConfig(args.file, key_env=args.key_env)
        before = store.format
        new_key = key_from_env(args.new_key_env) if os.environ.get(args.new_key_env) else None
        store.rotate(new_key, args.format)
        change = "new key" if new_key is not None else "same key"
        hint = (f"; export the value of {args.new_key_env} as {args.key_env} from now on"
                if change == "new key" else "")
        print(f"rotated {args.file}: {before} -> {args.format}, {change}{hint}", file=sys.stderr)
        return 0
    store = SecureConfig(args.file, key_env=args.key_env)
    if args.command == "set":
        value = _read_value()
        if not value:
            raise SecretsFileError(f"no value read from stdin for {args.name!r}; nothing was changed")
        store.set(args.name, value, args.format)
        print(f"set {args.name!r} in {args.file} ({store.format})", file=sys.stderr)
        return 0
    if args.command == "names":
        print(f"# {args.file}: format {store.format}", file=sys.stderr)
        for name in store.names():
            print(name, file=out)
        return 0
    if args.command == "get":
        value = store.get(args.name)
        if args.show:
            print(value if isinstance(value, str) else json.dumps(value), file=out)
        else:
            print(f"{args.name!r} is set; pass --show to print it", file=sys.stderr)
        return 0
    if args.command == "decrypt":
        data = store.load()
        if args.out:
            _write_private(Path(args.out), json.dumps(data, indent=2, ensure_ascii=False, sort_keys=True) + "\n")
            print(f"wrote plaintext to {args.out} (mode 0600); delete it when done", file=sys.stderr)
        elif args.show:
            print(json.dumps(data, indent=2, ensure_ascii=False, sort_keys=True), file=out)
        else:
            print(json.dumps(dict.fromkeys(sorted(data), MASK), indent=2), file=out)
            print("values masked: pass --show to print them or -o FILE to write them", file=sys.stderr)
        return 0
    raise AssertionError(args.command)  # argparse allows only the commands above


def main(argv: Sequence[str] | None = None) -> int:
    try:
        return run(argv)
    except SecretError as exc:
        print(f"{PROG}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1

