"""Property-based fuzz of the decoder: whatever the bytes, the result is a dict or a typed SecretError."""

from __future__ import annotations

import base64
import os

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.secrets import SecretError, SecretKeyError, formats, parse_key

KEY = parse_key(os.urandom(32))
OTHER = parse_key(os.urandom(32))
PLAIN = {"mt5_password": "fuzz-canary-Zq81", "mt5_login": 7}
V1 = formats.encrypt(PLAIN, KEY, "v1")
SEED = formats.encrypt(PLAIN, KEY, "seed")
B64 = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=\n"


@st.composite
def mutated(draw: st.DrawFn, base: bytes) -> bytes:
    """A valid file with a few edits: flips, truncation, insertion, base64-alphabet replacements."""
    blob = bytearray(base)
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["flip", "cut", "insert", "b64char", "drop"]))
        pos = draw(st.integers(0, max(len(blob) - 1, 0)))
        if op == "flip" and blob:
            blob[pos] ^= draw(st.integers(1, 255))
        elif op == "cut":
            del blob[pos:]
        elif op == "insert":
            blob[pos:pos] = draw(st.binary(min_size=1, max_size=8))
        elif op == "b64char" and blob:
            blob[pos] = draw(st.sampled_from(B64))
        elif op == "drop" and blob:
            del blob[pos]
    return bytes(blob)


blobs = st.one_of(
    st.binary(max_size=300),
    st.binary(max_size=120).map(lambda b: formats.MAGIC + b),
    st.binary(min_size=16, max_size=16).flatmap(
        lambda iv: st.binary(max_size=96).map(lambda ct: iv + base64.b64encode(ct))),
    mutated(V1),
    mutated(SEED),
)


@settings(max_examples=10_000, deadline=None, suppress_health_check=list(HealthCheck), database=None)
@given(blob=blobs, right_key=st.booleans())
def test_decoder_returns_a_dict_or_raises_a_typed_error(blob: bytes, right_key: bool) -> None:
    key = KEY if right_key else OTHER
    failure: SecretError | None = None
    try:
        data, fmt = formats.decrypt(blob, key)
    except SecretError as exc:
        failure = exc
    if failure is not None:
        text = f"{failure} {failure!r}"
        assert "fuzz-canary" not in text and "Zq81" not in text
        assert failure.__context__ is None and failure.__cause__ is None  # nothing decrypted rides along
        return
    assert isinstance(data, dict)
    # Only the unauthenticated seed format may decode an altered file; v1 must refuse every change.
    assert fmt == "seed" or (blob == V1 and right_key)


@settings(max_examples=2_000, deadline=None, database=None)
@given(value=st.one_of(st.text(max_size=80), st.binary(max_size=80),
                       st.text(max_size=80).map(lambda t: "hex:" + t),
                       st.text(max_size=80).map(lambda t: "base64:" + t)))
def test_key_parser_raises_only_its_typed_error(value: str | bytes) -> None:
    try:
        key = parse_key(value)
    except SecretKeyError as exc:
        message = str(exc)
    else:
        assert len(key.material) == 32
        return
    assert "32 bytes" in message
