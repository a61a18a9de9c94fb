"""AES-256 keys: where they come from, the accepted forms, and a holder that never prints itself.

Accepted forms (the string in ``CONFIG_AES_KEY``, or an argument):

- exactly 32 bytes once UTF-8 encoded (the seed project's form: a 32-character ASCII passphrase);
- ``base64:<text>`` decoding (standard alphabet, strict) to exactly 32 bytes;
- ``hex:<64 hex digits>``.

A prefix wins: a 32-character string that starts with ``hex:`` is read as hex. Nothing is stripped or
padded, so a trailing newline is an error rather than a silently different key.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import re

from engine.errors import SecretKeyError

KEY_BYTES = 32
DEFAULT_KEY_ENV = "CONFIG_AES_KEY"
EXPECTED_FORM = ("a key of exactly 32 bytes: a 32-character ASCII string, 'base64:' followed by the base64 "
                 "of 32 bytes, or 'hex:' followed by 64 hex digits (make one with "
                 "`python -m engine.secrets keygen`)")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class Key:
    """32 bytes of key material; ``repr``/``str`` show only that it is hidden, and it refuses pickling."""

    __slots__ = ("_material",)

    def __init__(self, material: bytes) -> None:
        if len(material) != KEY_BYTES:
            raise SecretKeyError(f"the key is {len(material)} bytes; expected {EXPECTED_FORM}")
        self._material = bytes(material)

    @property
    def material(self) -> bytes:
        return self._material

    def check_value(self, label: bytes) -> bytes:
        """A short, one-way fingerprint (HMAC-SHA256) stored in file headers to tell a wrong key from
        tampering; it reveals nothing usable about the key."""
        return hmac.new(self._material, label, hashlib.sha256).digest()[:8]

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Key) and hmac.compare_digest(self._material, other._material)

    def __hash__(self) -> int:
        return hash(self.check_value(b"hash"))

    def __repr__(self) -> str:
        return "Key(<hidden>)"

    __str__ = __repr__

    def __reduce__(self) -> tuple[object, ...]:
        raise TypeError("engine.secrets.Key cannot be pickled; read the key from the environment in each process")


def parse_key(value: str | bytes | Key) -> Key:
    """Parse a key in one of the accepted forms; the error names the form, never the value."""
    if isinstance(value, Key):
        return value
    if isinstance(value, bytes | bytearray):
        return Key(bytes(value))
    if not isinstance(value, str):
        raise SecretKeyError(f"the key must be a str or bytes, got {type(value).__name__}; expected {EXPECTED_FORM}")
    if value.startswith("base64:"):
        try:
            material = base64.b64decode(value[len("base64:"):].encode("ascii"), validate=True)
        except (binascii.Error, UnicodeEncodeError):
            material = None
        if material is None:
            raise SecretKeyError(f"the 'base64:' key is not valid base64; expected {EXPECTED_FORM}")
        if len(material) != KEY_BYTES:
            raise SecretKeyError(f"the 'base64:' key decodes to {len(material)} bytes; expected {EXPECTED_FORM}")
        return Key(material)
    if value.startswith("hex:"):
        digits = value[len("hex:"):]
        try:
            material = bytes.fromhex(digits) if re.fullmatch(r"[0-9A-Fa-f]*", digits) else None
        except ValueError:
            material = None
        if material is None:
            raise SecretKeyError(f"the 'hex:' key is not hex digits (two per byte); expected {EXPECTED_FORM}")
        if len(material) != KEY_BYTES:
            raise SecretKeyError(f"the 'hex:' key decodes to {len(material)} bytes; expected {EXPECTED_FORM}")
        return Key(material)
    try:
        raw = value.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates from a mangled environment
        raw = None
    if raw is None:
        raise SecretKeyError(f"the key is not valid UTF-8; expected {EXPECTED_FORM}")
    if len(raw) != KEY_BYTES:
        raise SecretKeyError(f"the key is {len(raw)} bytes once UTF-8 encoded; expected {EXPECTED_FORM}")
    return Key(raw)


def check_env_name(name: str) -> str:
    """Refuse anything that is not an environment variable name, without echoing it: a key pasted
    where the variable's *name* belongs must not end up in an error message or a log."""
    if not isinstance(name, str) or not _ENV_NAME.match(name):
        raise SecretKeyError("the key variable must be the NAME of an environment variable (letters, digits, "
                             "underscore; e.g. CONFIG_AES_KEY), not the key itself")
    return name


def key_from_env(name: str = DEFAULT_KEY_ENV) -> Key:
    """Read and parse the key from the environment variable ``name``."""
    check_env_name(name)
    value = os.environ.get(name)
    if value is None or value == "":
        raise SecretKeyError(f"environment variable {name} is not set; export {EXPECTED_FORM}")
    try:
        return parse_key(value)
    except SecretKeyError as exc:
        problem = str(exc)
    raise SecretKeyError(f"{name}: {problem}")


def generate_key() -> str:
    """A fresh random key in the ``base64:`` form."""
    return "base64:" + base64.b64encode(os.urandom(KEY_BYTES)).decode("ascii")
