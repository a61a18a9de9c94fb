"""The two on-disk formats. Pure functions over bytes: no files, no environment.

**seed** (read and written, for compatibility with the seed project's files)::

    IV (16 raw bytes) || base64(AES-256-CBC(key, IV, PKCS7(UTF-8 JSON object)))

The IV is raw binary, *not* base64; only the ciphertext after it is base64 text (standard alphabet,
``=`` padding). ASCII whitespace inside or around that text (line breaks from ``openssl base64`` or
``base64``) is ignored when reading; the writer emits one unbroken line with no trailing newline.
The seed format has no integrity check: a wrong key and a damaged file cannot be told apart, and a
modified file can decrypt to different data. Prefer v1.

**v1** (the default for new files)::

    "ENGSEC" (6) | version 0x01 (1) | key check (8) | nonce (12) | AES-256-GCM ciphertext || tag (16)

The key check is ``HMAC-SHA256(key, "engine.secrets v1 key check")[:8]``, so a wrong key is reported
as such instead of as tampering; the first 27 bytes are the GCM associated data, so the header and
nonce are authenticated with the body. Any changed byte fails verification.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from collections.abc import Mapping
from typing import Any, Literal

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from engine.errors import (
    CorruptSecretsError,
    SecretContentError,
    SecretFormatError,
    TamperedSecretsError,
    WrongKeyError,
    WrongKeyOrCorruptError,
)
from engine.secrets.keys import Key

Format = Literal["v1", "seed"]
FORMATS: tuple[str, ...] = ("v1", "seed")
DEFAULT_FORMAT: Format = "v1"

MAGIC = b"ENGSEC"
V1 = 1
IV_BYTES = 16
NONCE_BYTES = 12
TAG_BYTES = 16
CHECK_BYTES = 8
_V1_HEADER = len(MAGIC) + 1 + CHECK_BYTES + NONCE_BYTES
_CHECK_LABEL = b"engine.secrets v1 key check"
MAX_FILE_BYTES = 1 << 20  # a secrets file is a handful of credentials; refuse to buffer anything huge
_B64_WHITESPACE = b" \t\r\n\v\f"


# -- plaintext ------------------------------------------------------------------------------------
def encode_plaintext(data: Mapping[str, Any]) -> bytes:
    if not isinstance(data, Mapping):
        raise SecretContentError(f"secrets must be a mapping of names to values, got {type(data).__name__}")
    bad = [k for k in data if not isinstance(k, str) or not k]
    if bad:
        raise SecretContentError("every secret name must be a non-empty string")
    try:
        text = json.dumps(dict(data), ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    except (TypeError, ValueError):
        text = None
    if text is None:
        raise SecretContentError("secret values must be JSON values (strings, numbers, booleans, lists, objects)")
    return text.encode("utf-8")


def _unique_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _DuplicateName(key)
        out[key] = value
    return out


class _DuplicateName(Exception):
    def __init__(self, name: str) -> None:
        super().__init__()
        self.name = name


def decode_plaintext(plaintext: bytes) -> dict[str, Any]:
    """UTF-8 JSON object with unique names -> dict; errors carry positions and names, never content."""
    problem: str | None = None
    obj: Any = None
    try:
        text = plaintext.decode("utf-8")
    except UnicodeDecodeError:
        text = None
        problem = "decrypted content is not UTF-8 text"
    if text is not None:
        try:
            obj = json.loads(text, object_pairs_hook=_unique_object)
        except _DuplicateName as dup:
            problem = f"the secret name {dup.name!r} appears more than once"
        except json.JSONDecodeError as exc:
            problem = f"decrypted content is not JSON (line {exc.lineno}, column {exc.colno})"
        except RecursionError:
            problem = "decrypted content is JSON nested too deeply"
        del text
    if problem is None and not isinstance(obj, dict):
        problem = f"decrypted content is a JSON {_json_kind(obj)}, not an object of name -> value"
    if problem is not None:
        del obj
        raise SecretContentError(problem + "; write the file from a JSON object such as "
                                           '{"db_password": "..."}')
    return obj


def _json_kind(obj: Any) -> str:
    return {list: "array", str: "string", int: "number", float: "number", bool: "boolean",
            type(None): "null"}.get(type(obj), type(obj).__name__)


# -- detection ------------------------------------------------------------------------------------
def detect_format(blob: bytes) -> Format:
    """Which format ``blob`` is in; raises for empty, oversized, plaintext JSON or unknown-version files."""
    if not blob:
        raise CorruptSecretsError("the file is empty")
    if len(blob) > MAX_FILE_BYTES:
        raise SecretFormatError(f"the file is {len(blob):,} bytes, more than a secrets file can be "
                                f"({MAX_FILE_BYTES:,}); is this the right file?")
    if blob.startswith(MAGIC):
        if len(blob) <= len(MAGIC):
            raise CorruptSecretsError("the file ends inside its header (truncated)")
        version = blob[len(MAGIC)]
        if version != V1:
            raise SecretFormatError(f"unknown secrets format version {version}; this engine reads version {V1} "
                                    "and the seed format: upgrade engine or re-create the file")
        return "v1"
    if _looks_like_plain_json(blob):
        raise SecretFormatError("the file is plaintext JSON, not an encrypted secrets file; encrypt it with "
                                "`python -m engine.secrets encrypt PLAIN.json -o FILE` and delete the plaintext")
    return "seed"


def _looks_like_plain_json(blob: bytes) -> bool:
    head = blob.lstrip()[:1]
    if head != b"{":
        return False
    try:
        json.loads(blob.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return False
    return True


# -- seed -----------------------------------------------------------------------------------------
def encrypt_seed(plaintext: bytes, key: Key) -> bytes:
    iv = os.urandom(IV_BYTES)
    while iv.startswith(MAGIC):  # keep seed files unambiguous against the v1 header (p = 2**-48)
        iv = os.urandom(IV_BYTES)
    padder = padding.PKCS7(algorithms.AES.block_size).padder()
    padded = padder.update(plaintext) + padder.finalize()
    enc = Cipher(algorithms.AES(key.material), modes.CBC(iv)).encryptor()
    return iv + base64.b64encode(enc.update(padded) + enc.finalize())


def decrypt_seed(blob: bytes, key: Key) -> bytes:
    if len(blob) < IV_BYTES:
        raise CorruptSecretsError(f"the file is {len(blob)} bytes, shorter than the 16-byte IV (truncated)")
    iv = blob[:IV_BYTES]
    text = blob[IV_BYTES:].translate(None, _B64_WHITESPACE)
    if not text:
        raise CorruptSecretsError("the file holds an IV and no ciphertext (truncated)")
    try:
        ciphertext = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        ciphertext = None
    if ciphertext is None:
        raise CorruptSecretsError("the ciphertext after the 16-byte IV is not valid base64 (damaged, or not a "
                                  "seed-format file)")
    block = algorithms.AES.block_size // 8
    if not ciphertext or len(ciphertext) % block:
        raise CorruptSecretsError(f"the ciphertext is {len(ciphertext)} bytes, not a positive multiple of the "
                                  f"{block}-byte AES block (truncated or damaged)")
    dec = Cipher(algorithms.AES(key.material), modes.CBC(iv)).decryptor()
    padded = dec.update(ciphertext) + dec.finalize()
    unpadder = padding.PKCS7(algorithms.AES.block_size).unpadder()
    try:
        plaintext: bytes | None = unpadder.update(padded) + unpadder.finalize()
    except ValueError:
        plaintext = None
    del padded
    if plaintext is None:
        raise WrongKeyOrCorruptError("cannot decrypt the seed-format file: the key is wrong or the file is "
                                     "damaged (this format cannot tell which; `rotate` it to v1)")
    return plaintext


# -- v1 (AES-256-GCM) -----------------------------------------------------------------------------
def encrypt_v1(plaintext: bytes, key: Key) -> bytes:
    header = MAGIC + bytes([V1]) + key.check_value(_CHECK_LABEL) + os.urandom(NONCE_BYTES)
    return header + AESGCM(key.material).encrypt(header[-NONCE_BYTES:], plaintext, header)


def decrypt_v1(blob: bytes, key: Key) -> bytes:
    if len(blob) < _V1_HEADER + TAG_BYTES:
        raise CorruptSecretsError(f"the file is {len(blob)} bytes, shorter than the v1 header and tag "
                                  f"({_V1_HEADER + TAG_BYTES} bytes): truncated")
    header, body = blob[:_V1_HEADER], blob[_V1_HEADER:]
    check = header[len(MAGIC) + 1:len(MAGIC) + 1 + CHECK_BYTES]
    if check != key.check_value(_CHECK_LABEL):
        raise WrongKeyError("the key does not open this file (its key check differs): use the key the file was "
                            "written with, or restore the file if its header was altered")
    try:
        plaintext: bytes | None = AESGCM(key.material).decrypt(header[-NONCE_BYTES:], body, header)
    except InvalidTag:
        plaintext = None
    if plaintext is None:
        raise TamperedSecretsError("the file fails authentication: it was modified or damaged after it was "
                                   "written; restore it from a backup or re-create it")
    return plaintext


# -- dispatch -------------------------------------------------------------------------------------
def encrypt(data: Mapping[str, Any], key: Key, fmt: str = DEFAULT_FORMAT) -> bytes:
    if fmt not in FORMATS:
        raise SecretFormatError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    plaintext = encode_plaintext(data)
    return encrypt_v1(plaintext, key) if fmt == "v1" else encrypt_seed(plaintext, key)


def decrypt(blob: bytes, key: Key) -> tuple[dict[str, Any], Format]:
    """Decrypt a file's bytes in whichever format it is; returns the mapping and the format."""
    fmt = detect_format(blob)
    plaintext = decrypt_v1(blob, key) if fmt == "v1" else decrypt_seed(blob, key)
    if fmt == "seed" and not _is_utf8(plaintext):
        # Unauthenticated CBC under a wrong key passes the padding check 1 time in ~256; the garbage it
        # yields is not UTF-8, so report it as what it most likely is.
        del plaintext
        raise WrongKeyOrCorruptError("cannot decrypt the seed-format file: the key is wrong or the file is "
                                     "damaged (this format cannot tell which; `rotate` it to v1)")
    return decode_plaintext(plaintext), fmt


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True
