"""``python -m engine.secrets``: create, inspect, rotate and read encrypted secrets files.

Keys come only from environment variables (``--key-env`` names the variable, default CONFIG_AES_KEY);
no option takes a key or a secret value on the command line, where ``ps`` and shell history would see
it. Decrypted values are printed only with ``--show``; ``set`` reads the value from stdin.

A key pasted where it does not belong (the command, ``--format``, FILE, NAME, ...) is never printed back:
messages name arguments by role (FILE, NAME, PLAINTEXT, OUT), argparse's quoting of a bad value is cut,
and whatever typed text still reaches an error (from the OS, say) is replaced by ``<hidden>``.
"""

from __future__ import annotations

import argparse
import contextlib
import getpass
import json
import os
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from engine.errors import MissingSecretError, SecretError, SecretsFileError
from engine.secrets import formats
from engine.secrets.keys import DEFAULT_KEY_ENV, check_env_name, generate_key, key_from_env
from engine.secrets.store import SecureConfig

PROG = "python -m engine.secrets"
NEW_KEY_ENV = "CONFIG_AES_KEY_NEW"
MASK = "***"


HIDDEN = "<hidden>"


class _UsageError(Exception):
    """A command line argparse refused; raised instead of printing so :func:`main` can hide what was typed."""

    def __init__(self, usage: str, prog: str, problem: str) -> None:
        super().__init__(problem)
        self.usage, self.prog, self.problem = usage, prog, problem


class _Parser(argparse.ArgumentParser):
    """argparse quotes what was typed in several errors (``invalid choice: 'base64:...'``, unrecognized
    arguments, a value given to a flag); a key pasted into any position must not be printed back.
    Abbreviations are off so ``--key`` is not taken for ``--key-env``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)
        self.commands: dict[str, argparse.ArgumentParser] = {}

    def error(self, message: str) -> NoReturn:
        raise _UsageError(self.format_usage(), self.prog, _usage_problem(message))

    def vocabulary(self) -> set[str]:
        """Every word of our own help texts: typed words found here (commands, options, formats) are
        ours to print, anything else typed is not."""
        text = self.format_help() + "".join(sp.format_help() for sp in self.commands.values())
        return set(re.findall(r"[^\s,'\"()\[\]{}]+", text))


def _usage_problem(message: str) -> str:
    """argparse's message with the typed value cut out where argparse quotes it."""
    if message.startswith("unrecognized arguments"):
        return ("unrecognized arguments (not shown: they may hold a secret); keys come only from the "
                "environment and values from stdin, see --help")
    head, found, tail = message.partition(": invalid choice")
    if found:
        choices = re.search(r"\(choose from (.*)\)", tail)
        allowed = f"; choose from {choices.group(1)}" if choices else "; see --help"
        return f"{head}: invalid choice (not shown: it may hold a secret){allowed}"
    head, found, _ = message.partition(": ignored explicit argument")
    if found:
        return f"{head}: takes no value (the value given is not shown)"
    return message


def _hide_typed(text: str, typed: Sequence[str], vocabulary: set[str]) -> str:
    """Replace anything typed on the command line (and the path forms a typed path takes in messages)
    by HIDDEN. The CLI's own messages already name arguments by role (FILE, NAME, ...); this is the net
    under them, for messages written elsewhere (argparse, the OS). Words shorter than 8 characters are
    left alone: no accepted key is that short, and masking them would garble ordinary words."""
    candidates: set[str] = set()
    for token in typed:
        for part in (token, *token.split("=", 1)[1:]):
            if part in vocabulary:
                continue
            candidates.update({part, repr(part)[1:-1]})
            with contextlib.suppress(ValueError):
                path = Path(part)
                candidates.update({str(path), path.name, str(path.parent), os.path.abspath(part)})
    for candidate in sorted(candidates, key=len, reverse=True):
        if len(candidate) >= 8 and candidate not in vocabulary:
            text = text.replace(candidate, HIDDEN)
    return text


def _parser() -> _Parser:
    p = _Parser(
        prog=PROG, description="Create, inspect, rotate and read encrypted secrets files.",
        epilog="The key is read from the environment, never from argv. Formats: v1 (AES-256-GCM, "
               "authenticated, default) and seed (16-byte IV + base64 AES-256-CBC, read for compatibility). "
               "Errors name arguments by their role (FILE, NAME, ...) and never print what was typed. "
               "See docs/secrets.md.")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help: str, *, key: bool = True) -> argparse.ArgumentParser:
        sp = sub.add_parser(name, help=help)
        p.commands[name] = sp
        if key:
            sp.add_argument("--key-env", default=DEFAULT_KEY_ENV, metavar="VAR",
                            help=f"environment variable holding the key (default {DEFAULT_KEY_ENV})")
        return sp

    command("keygen", "print a new random key (base64:...) to export as CONFIG_AES_KEY", key=False)

    sp = command("encrypt", "encrypt a plaintext JSON object into a secrets file")
    sp.add_argument("plaintext", metavar="PLAINTEXT", help="JSON file with an object of name -> value ('-' reads stdin)")
    sp.add_argument("-o", "--out", required=True, metavar="OUT", help="secrets file to write (mode 0600)")
    sp.add_argument("--format", choices=formats.FORMATS, default=formats.DEFAULT_FORMAT)
    sp.add_argument("--force", action="store_true", help="overwrite an existing secrets file")

    sp = command("decrypt", "show names (values masked), or write/print the plaintext")
    sp.add_argument("file", metavar="FILE")
    group = sp.add_mutually_exclusive_group()
    group.add_argument("--show", action="store_true", help="print the decrypted JSON with its values")
    group.add_argument("-o", "--out", metavar="OUT", help="write the decrypted JSON to this file (mode 0600)")

    sp = command("rotate", "re-encrypt a file under a new key and/or into another format")
    sp.add_argument("file", metavar="FILE")
    sp.add_argument("--new-key-env", default=NEW_KEY_ENV, metavar="VAR",
                    help=f"environment variable holding the new key (default {NEW_KEY_ENV}; when unset the "
                         "key stays and only the format changes)")
    sp.add_argument("--format", choices=formats.FORMATS, default=formats.DEFAULT_FORMAT,
                    help="format to write (default v1)")

    sp = command("get", "check that a secret exists; print it only with --show")
    sp.add_argument("file", metavar="FILE")
    sp.add_argument("name", metavar="NAME")
    sp.add_argument("--show", action="store_true", help="print the value to stdout")

    sp = command("set", "add or replace one secret, reading its value from stdin")
    sp.add_argument("file", metavar="FILE")
    sp.add_argument("name", metavar="NAME")
    sp.add_argument("--format", choices=formats.FORMATS, default=None,
                    help="format of a new file (default v1); an existing file keeps its own")

    sp = command("names", "list the names in a file and its format")
    sp.add_argument("file", metavar="FILE")
    return p


def _read_plaintext(source: str) -> dict[str, Any]:
    if source == "-":
        text = sys.stdin.read()
    else:
        try:
            text = Path(source).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            problem = getattr(exc, "strerror", None) or type(exc).__name__
            raise SecretsFileError(f"cannot read PLAINTEXT: {problem}") from None
    return formats.decode_plaintext(text.encode("utf-8"))


def _write_private(path: Path, text: str) -> None:
    # Narrow the mode before any plaintext is written (an existing file keeps its old mode on open), and
    # refuse to follow a symlink planted where the plaintext goes.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    except OSError as exc:
        raise SecretsFileError(f"cannot write plaintext to OUT: {exc.strerror} (symlinks are refused)") from None
    os.fchmod(fd, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)


def _read_value() -> str:
    if sys.stdin.isatty():
        return getpass.getpass("value (not echoed): ")
    value = sys.stdin.read()
    return value[:-1] if value.endswith("\n") else value  # `echo x |` and here-strings add one newline


def _get(store: SecureConfig, name: str) -> Any:
    """The store's own miss names the secret; here the name was typed, so it is called NAME."""
    absent = object()
    value = store.get(name, absent)
    if value is absent:
        known = ", ".join(store.names()) or "none"
        raise MissingSecretError(f"FILE has no secret named NAME (names in FILE: {known}); add it with "
                                 f"`{PROG} set FILE NAME`")
    return value


def run(argv: Sequence[str] | None = None, parser: argparse.ArgumentParser | None = None) -> int:
    """Every message names arguments by role (FILE, NAME, PLAINTEXT, OUT), never by what was typed."""
    args = (parser or _parser()).parse_args(argv)
    out = sys.stdout
    if args.command == "keygen":
        print(generate_key(), file=out)
        return 0
    check_env_name(args.key_env)
    if args.command == "encrypt":
        target = Path(args.out)
        if target.exists() and not args.force:
            raise SecretsFileError("OUT exists; pass --force to overwrite it, or use `rotate`/`set`")
        data = _read_plaintext(args.plaintext)
        SecureConfig(target, key_env=args.key_env, label="OUT").write(data, args.format)
        print(f"wrote OUT ({args.format}, {len(data)} secrets: {', '.join(sorted(data))})", file=sys.stderr)
        return 0
    if args.command == "rotate":
        check_env_name(args.new_key_env)
        store = SecureConfig(args.file, key_env=args.key_env, label="FILE")
        before = store.format
        new_key = key_from_env(args.new_key_env) if os.environ.get(args.new_key_env) else None
        store.rotate(new_key, args.format)
        change = "new key" if new_key is not None else "same key"
        hint = (f"; export the value of {args.new_key_env} as {args.key_env} from now on"
                if change == "new key" else "")
        print(f"rotated FILE: {before} -> {args.format}, {change}{hint}", file=sys.stderr)
        return 0
    store = SecureConfig(args.file, key_env=args.key_env, label="FILE")
    if args.command == "set":
        value = _read_value()
        if not value:
            raise SecretsFileError("no value read from stdin for NAME; nothing was changed")
        store.set(args.name, value, args.format)
        print(f"set NAME in FILE ({store.format})", file=sys.stderr)
        return 0
    if args.command == "names":
        print(f"# FILE: format {store.format}", file=sys.stderr)
        for name in store.names():
            print(name, file=out)
        return 0
    if args.command == "get":
        value = _get(store, args.name)
        if args.show:
            print(value if isinstance(value, str) else json.dumps(value), file=out)
        else:
            print("NAME is set in FILE; pass --show to print it", file=sys.stderr)
        return 0
    if args.command == "decrypt":
        data = store.load()
        if args.out:
            _write_private(Path(args.out), json.dumps(data, indent=2, ensure_ascii=False, sort_keys=True) + "\n")
            print("wrote the plaintext to OUT (mode 0600); delete it when done", file=sys.stderr)
        elif args.show:
            print(json.dumps(data, indent=2, ensure_ascii=False, sort_keys=True), file=out)
        else:
            print(json.dumps(dict.fromkeys(sorted(data), MASK), indent=2), file=out)
            print("values masked: pass --show to print them or -o OUT to write them", file=sys.stderr)
        return 0
    raise AssertionError(args.command)  # argparse allows only the commands above


def main(argv: Sequence[str] | None = None) -> int:
    typed = list(sys.argv[1:] if argv is None else argv)
    parser = _parser()
    try:
        return run(typed, parser)
    except _UsageError as exc:
        sys.stderr.write(exc.usage)
        print(f"{exc.prog}: error: {_hide_typed(exc.problem, typed, parser.vocabulary())}", file=sys.stderr)
        return 2
    except SecretError as exc:
        problem = f"{type(exc).__name__}: {exc}"
    except (OSError, ValueError) as exc:  # the OS and pathlib quote paths in their messages
        problem = f"{type(exc).__name__}: {exc}"
    print(f"{PROG}: {_hide_typed(problem, typed, parser.vocabulary())}", file=sys.stderr)
    return 1
