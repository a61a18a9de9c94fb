"""One line for a config that cannot run: engine's ConfigError, or Hydra's and OmegaConf's own errors
(up to 13 lines with the config search path) reduced to what the user has to fix.

No secret is echoed: the values that secret-looking keys were given on the command line are masked wherever
the text repeats them (Hydra quotes the whole override it could not parse), and a parse error of such an
override shows only its key. Values the process has resolved as secrets are masked by ``engine.redact``.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence
from dataclasses import fields, is_dataclass

from omegaconf.errors import ConfigAttributeError, ConfigKeyError, OmegaConfBaseException

from engine.config.validate import unknown_key
from engine.errors import ConfigError
from engine.redact import MASK, is_secret_key, redact_text

PREFIX = "engine: invalid config: "
_PARSE = re.compile(r"Error parsing override '(?P<override>[^\n]*)'\n(?P<detail>[^\n]*)")
_PRESENT = re.compile(r"Could not append to config\. An item is already at '([^']+)'")
_TOKEN = re.compile(r"[A-Za-z0-9+/=_-]+")
_HEX = re.compile(r"[0-9a-fA-F]{32,}")
_SPLIT = re.compile(r"[\s'\"\[\]{},.]+")
_KEY = re.compile(r"^[+~]{0,2}[A-Za-z_][\w.\-/@]*$")
_NOISE = ("provider=", "See https://", "Set the environment variable HYDRA_FULL_ERROR", "full_key:",
          "reference_type=", "object_type=")


def secret_looking(key: str) -> bool:
    """``engine.redact``'s rule on any part of a dotted key, plus every key of the ``secrets`` group and any
    ``key``-named part (``key_env``): those are where a pasted key lands."""
    parts = key.lstrip("+~").split(".")
    return parts[0] == "secrets" or any(is_secret_key(p) or "key" in p.lower().split("_") for p in parts)


def one_line(exc: BaseException, argv: Sequence[str]) -> str:
    """``engine: invalid config: <key>: <problem>`` for ``exc``, with secret-looking values masked."""
    return PREFIX + _mask(_describe(exc), argv)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, ConfigError):
        return str(exc)
    parse = _PARSE.search(str(exc))
    if parse:
        return _parse_error(parse.group("override"), parse.group("detail").strip())
    present = _PRESENT.search(str(exc))
    if present:
        key = present.group(1)
        return f"{key}: the config already has this key, so it cannot be appended with '+'; set it without " \
               f"the '+' ({key}=...)"
    missing = getattr(exc, "missing_cfg_file", None)
    if missing:
        return _missing_option(str(missing), getattr(exc, "options", None), exc)
    cause = _omegaconf_cause(exc)
    if isinstance(cause, ConfigAttributeError | ConfigKeyError) and cause.full_key and \
            isinstance(cause.object_type, type) and is_dataclass(cause.object_type) and "not in" in str(cause):
        return str(unknown_key(str(cause.full_key), [f.name for f in fields(cause.object_type)]))
    if cause is not None and cause.full_key:
        if secret_looking(str(cause.full_key)):
            return f"{cause.full_key}: {type(cause).__name__} (details not shown: the key may hold a secret)"
        return f"{cause.full_key}: {_flat(str(cause.msg) if cause.msg else str(cause))}"
    return _flat(str(exc)) or type(exc).__name__


def _parse_error(override: str, detail: str) -> str:
    key, sep, _ = override.partition("=")
    if not _KEY.match(key):
        return "cannot parse an override (not shown: its key is not a config name; check the quoting)"
    if sep and secret_looking(key):
        return f"cannot parse override {key}={MASK} (the value is not shown: {key} may hold a secret)"
    return f"cannot parse override {override!r}: {detail}"


def _missing_option(missing: str, options: Sequence[str] | None, exc: BaseException) -> str:
    group, _, option = missing.rpartition("/")
    if not options:
        return _flat(str(exc))
    close = difflib.get_close_matches(option, list(options), n=3, cutoff=0.5)
    hint = f"did you mean {' or '.join(f'{group}={c}' for c in close)}? " if close else ""
    return f"{group}: Could not find '{missing}'; {hint}options: {', '.join(options)}"


def _omegaconf_cause(exc: BaseException) -> OmegaConfBaseException | None:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, OmegaConfBaseException):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def _flat(text: str) -> str:
    kept = []
    for line in (ln.strip() for ln in text.splitlines()):
        if line.startswith("Config search path"):
            break  # the rest lists where Hydra looked: noise for a typo
        if line and not line.startswith(_NOISE):
            kept.append(line)
    return " ".join(kept)


def _looks_like_key_material(text: str) -> bool:
    """A long token in a key's alphabet: hex, or base64 with the even mix of capitals, small letters and
    digits random bytes give (a date, a path or a class name has few capitals or a ``:``/``.``)."""
    body = text.removeprefix("base64:").removeprefix("hex:")
    if len(body) < 24 or not _TOKEN.fullmatch(body):
        return False
    if _HEX.fullmatch(body):
        return True
    upper = sum(c.isupper() for c in body)
    lower = sum(c.islower() for c in body)
    return upper >= 4 and lower >= 4 and any(c.isdigit() for c in body) and upper / len(body) >= 0.15


def _mask(text: str, argv: Sequence[str]) -> str:
    """Mask what the command line gave secret-looking keys, and any argument that looks like key material
    wherever it stands (a key pasted as an override's name, or alone, is echoed by "unknown key")."""
    for arg in argv:
        key, sep, value = arg.partition("=")
        forms: set[str] = set()
        if sep and value and secret_looking(key):
            forms |= {value, value.strip("'\"")}
            forms |= {t for t in _SPLIT.split(value) if len(t) >= 4}  # as Hydra re-quotes a list or dict
        forms |= {t for t in (*_SPLIT.split(key), *_SPLIT.split(value)) if _looks_like_key_material(t)}
        for form in sorted(forms, key=len, reverse=True):
            if form:
                text = text.replace(form, MASK)
    return redact_text(text)
