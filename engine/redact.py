"""Keep secret values out of logs, MLflow params/artifacts, error text and the console.

Two nets: values the secret resolver (and ``SecureConfig.get``) have handed out are remembered, for
this process only, and replaced wherever they appear, in the forms they take when written out
(JSON- or repr-escaped, URL-quoted); and values under secret-looking keys are masked regardless.

Where the masking applies:

- :func:`redact_text` / :func:`redact_mapping`: called by ``engine.tracking.mlflow`` on params, tags,
  text artifacts and the error tag, and by the CLI on the one-line error it prints;
- :func:`install_log_redaction`: a filter on the root logger's handlers and a log-record factory, so
  every record (message, arguments, traceback text) is masked whichever logger or handler emits it;
- :func:`install_stream_redaction`: wraps ``sys.stdout``/``sys.stderr`` so prints, rich consoles and
  uncaught tracebacks are masked too.

Values shorter than 4 characters are not remembered: masking every ``1`` would be worse than useless.

Process-wide by design: a secret resolved anywhere in the process must be masked everywhere in it (a log
handler installed by a library, an uncaught traceback, a thread's print), so the remembered values live in
one module-level registry guarded by a lock rather than in an object that each writer would have to be
handed. This is the one deliberate exception to "no module-level state".
"""

from __future__ import annotations

import json
import logging
import re
import sys
import threading
import urllib.parse
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TextIO

MASK = "***"
MIN_LENGTH = 4
_SECRET_KEY = re.compile(r"(pass(word|wd)?|secret|token|api_?key|private_?key|credential|aes_?key)$", re.I)
_REFERENCE = re.compile(r"^\$\{secret:[^}]*\}$")
# scheme://user:PASSWORD@host. The password may hold "/", "?" or "#" (database URLs accept them), so a
# query such as "host:8080?q=a@b" is masked too: masking too much is the safe side. Bounded scheme, a user
# part without "$" (an interpolation such as ${oc.env:U}:${oc.env:P}@db is not a password), no backtracking
# blow-up on long lines.
_URL_PASSWORD = re.compile(r"(?P<head>(?<![A-Za-z0-9+.-])[A-Za-z][A-Za-z0-9+.-]{0,31}://[^\s/:@$]*:)(?P<pw>[^\s@]+)@")
_known: set[str] = set()
_pattern: re.Pattern[str] | None = None  # all of _known, longest first; rebuilt after a change
_lock = threading.Lock()


def _variants(value: str) -> set[str]:
    """The value as it appears once serialised: JSON files, reprs in tracebacks, URLs/DSNs."""
    forms = {
        value,
        json.dumps(value)[1:-1],
        json.dumps(value, ensure_ascii=False)[1:-1],
        repr(value)[1:-1],
        urllib.parse.quote(value, safe=""),
        urllib.parse.quote_plus(value, safe=""),
    }
    return {f for f in forms if len(f) >= MIN_LENGTH}


def remember(value: str) -> None:
    """Register a secret value so that :func:`redact_text` masks it (and its escaped forms)."""
    global _pattern
    if not isinstance(value, str) or len(value) < MIN_LENGTH:
        return
    forms = _variants(value)
    with _lock:
        if not forms <= _known:
            _known.update(forms)
            _pattern = None


def remember_all(value: Any) -> None:
    """:func:`remember` every string and number inside ``value`` (a decrypted JSON value)."""
    if isinstance(value, str):
        remember(value)
    elif isinstance(value, int | float) and not isinstance(value, bool):
        remember(str(value))
    elif isinstance(value, Mapping):
        for item in value.values():
            remember_all(item)
    elif isinstance(value, list | tuple):
        for item in value:
            remember_all(item)


def forget_all() -> None:
    """Drop every remembered value (tests; a process that no longer holds any secret)."""
    global _pattern
    with _lock:
        _known.clear()
        _pattern = None


def _compiled() -> re.Pattern[str]:
    global _pattern
    with _lock:
        if _pattern is None:
            # Longest first, so a secret that contains another is masked whole.
            _pattern = re.compile("|".join(re.escape(v) for v in sorted(_known, key=len, reverse=True)))
        return _pattern


def redact_text(text: str) -> str:
    """``text`` with every remembered secret replaced by ``***``, and the password of any URL
    (``postgresql://user:pw@host``) too: a URL typed as an override was never registered as a secret."""
    if not isinstance(text, str):
        return text
    if "://" in text and "@" in text:  # cheap test first: most log lines have no URL with credentials
        text = _URL_PASSWORD.sub(rf"\g<head>{MASK}@", text)
    if not _known:
        return text
    # One compiled alternation, read without the lock on the fast path (bench/redact.py).
    return (_pattern or _compiled()).sub(MASK, text)


def mask_override(override: str) -> str:
    """A command-line override fit to show (run names, descriptions, sweep tables): the value of a
    secret-looking key masked (``storage.password=***``), a URL's password masked, a ``${secret:...}``
    reference kept."""
    key, sep, value = override.partition("=")
    if not sep:
        return redact_text(override)
    name = key.lstrip("+~")
    return f"{key}={redact_mapping({name: value})[name]}"


def protect_overrides(args: Iterable[str]) -> None:
    """Remember the literal value of every secret-looking key typed as an override (``storage.password=hunter2``)
    and every URL password in any override (``tracking.uri=postgresql://u:pw@db/x``) and, when there is one,
    mask secrets in logging and the standard streams from now on. Hydra logs and launches overrides as typed
    (a multirun's ``#0 : ...`` lines), so this runs before Hydra does. A sweep must come in one ``key=value`` per
    swept value (engine.cli expands them); a ``${secret:name}`` reference is not a secret and stays as it is."""
    found = False
    for arg in args:
        key, sep, value = arg.partition("=")
        value = value.strip("'\"")
        if sep and value and is_secret_key(key.lstrip("+~")) and not _REFERENCE.match(value):
            remember(value)
            found = True
        for match in _URL_PASSWORD.finditer(value if sep else arg):
            remember(match["pw"])
            found = True
    if found:
        protect_process()


def is_secret_key(key: str) -> bool:
    return bool(_SECRET_KEY.search(key.rsplit(".", 1)[-1]))


def redact_mapping(flat: Mapping[str, Any]) -> dict[str, Any]:
    """Mask values of secret-looking keys (a ``${secret:name}`` reference is kept: it is not a secret),
    and remembered secrets anywhere inside values, nested dicts/lists and numbers included."""
    out: dict[str, Any] = {}
    for key, value in flat.items():
        text = value if isinstance(value, str) else None
        if is_secret_key(str(key)) and value not in (None, "") and not (text and _REFERENCE.match(text)):
            out[key] = MASK
        else:
            out[key] = _redact_value(value)
    return out


def _redact_value(value: Any) -> Any:
    # A whole group aliased into a param (``x: ${storage}``) arrives as a dict, a numeric secret as a number.
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, Mapping):
        return redact_mapping(value)
    if isinstance(value, list | tuple):
        return [_redact_value(v) for v in value]
    if isinstance(value, int | float) and not isinstance(value, bool) and _known:
        return MASK if redact_text(str(value)) != str(value) else value
    return value


def _scrub_record(record: logging.LogRecord) -> None:
    try:
        message = record.getMessage()
    except Exception:  # malformed %-args: leave them for the handler's own error report
        return
    record.msg = redact_text(message)
    record.args = None
    if record.exc_info and not record.exc_text:
        record.exc_text = logging.Formatter().formatException(record.exc_info)
    if record.exc_text:
        record.exc_text = redact_text(record.exc_text)
    if record.stack_info:
        record.stack_info = redact_text(record.stack_info)


class RedactingFilter(logging.Filter):
    """A logging filter that masks remembered secrets in every record: message, arguments, traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        if _known:
            _scrub_record(record)
        return True


def _redacting_factory(previous: Callable[..., logging.LogRecord]) -> Callable[..., logging.LogRecord]:
    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        if _known:
            _scrub_record(record)
        return record

    factory._engine_redacting = True  # type: ignore[attr-defined]
    return factory


def install_log_redaction(logger: logging.Logger | None = None) -> None:
    """Mask secrets in logging: a filter on ``logger`` (root by default) and its handlers, and a record
    factory that covers loggers and handlers created later (MLflow's, Lightning's). Idempotent."""
    target = logger or logging.getLogger()
    for handler in target.handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter())
    if not any(isinstance(f, RedactingFilter) for f in target.filters):
        target.addFilter(RedactingFilter())
    current = logging.getLogRecordFactory()
    if not getattr(current, "_engine_redacting", False):
        logging.setLogRecordFactory(_redacting_factory(current))


class RedactingStream:
    """A text stream proxy whose ``write`` masks remembered secrets; everything else is delegated.

    A secret split across two ``write`` calls is not caught; ``print`` and loggers write whole lines.
    """

    def __init__(self, inner: TextIO) -> None:
        self._inner = inner

    @property
    def inner(self) -> TextIO:
        return self._inner

    def write(self, text: str) -> int:
        self._inner.write(redact_text(text) if _known else text)
        return len(text)

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def __getattr__(self, name: str) -> Any:
        if name == "_inner":  # copy/pickle probe attributes before __init__ ran: no endless recursion
            raise AttributeError(name)
        return getattr(self._inner, name)


def install_stream_redaction() -> None:
    """Wrap ``sys.stdout`` and ``sys.stderr`` in :class:`RedactingStream` (idempotent)."""
    for name in ("stdout", "stderr"):
        stream = getattr(sys, name)
        if stream is not None and not isinstance(stream, RedactingStream):
            setattr(sys, name, RedactingStream(stream))


def protect_process() -> None:
    """Every net at once: logging and the standard streams. Called when a secret is first resolved."""
    install_log_redaction()
    install_stream_redaction()
