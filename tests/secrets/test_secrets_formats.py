"""SecureConfig and both on-disk formats: round trips, interop with openssl, and every kind of bad input."""

from __future__ import annotations

import base64
import json
import os
import pickle
import shutil
import subprocess
from pathlib import Path

import pytest

from engine.secrets import (
    CorruptSecretsError,
    Key,
    MissingSecretError,
    SecretContentError,
    SecretError,
    SecretFormatError,
    SecretKeyError,
    SecretsFileError,
    SecureConfig,
    TamperedSecretsError,
    WrongKeyError,
    WrongKeyOrCorruptError,
    formats,
    generate_key,
    parse_key,
)

OPENSSL = shutil.which("openssl") or "/usr/bin/openssl"
SECRETS = {"mt5_login": 51234567, "mt5_password": "Pa55-w0rd/é\"quote", "mt5_server": "Broker-Demo",
           "nested": {"api_key": "k3y-in-a-dict"}}


def _leak_free(exc: BaseException, *needles: str | bytes) -> None:
    """No needle in the message, the repr or anything chained to the exception."""
    seen: BaseException | None = exc
    while seen is not None:
        for text in (str(seen), repr(seen)):
            for needle in needles:
                probe = needle.decode("latin-1") if isinstance(needle, bytes) else needle
                assert probe not in text, f"{type(seen).__name__} leaks {probe[:4]}..."
        seen = seen.__cause__ or seen.__context__


@pytest.mark.parametrize("fmt", ["v1", "seed"])
def test_round_trip(tmp_path: Path, key: str, fmt: str) -> None:
    store = SecureConfig(tmp_path / "s.enc", key)
    store.write(SECRETS, fmt)
    assert store.format == fmt
    assert store.load() == SECRETS
    assert store.get("mt5_password") == SECRETS["mt5_password"]
    assert store.get("mt5_login") == 51234567
    assert store.get("absent", None) is None
    assert store.get("absent", "fallback") == "fallback"
    assert store.names() == sorted(SECRETS)
    assert "mt5_server" in store and "absent" not in store
    assert (tmp_path / "s.enc").stat().st_mode & 0o777 == 0o600
    raw = (tmp_path / "s.enc").read_bytes()
    assert b"Pa55" not in raw and b"Broker" not in raw
    # Fresh IV/nonce per write: identical content never produces identical files.
    store.write(SECRETS, fmt)
    assert (tmp_path / "s.enc").read_bytes() != raw


def test_seed_layout_is_raw_iv_then_base64(tmp_path: Path, key: str) -> None:
    store = SecureConfig(tmp_path / "s.enc", key)
    store.write({"a": "b" * 40}, "seed")
    raw = (tmp_path / "s.enc").read_bytes()
    body = base64.b64decode(raw[16:], validate=True)  # everything after 16 raw bytes is base64
    plain = len(json.dumps({"a": "b" * 40}, separators=(",", ":")))
    assert len(body) == (plain // 16 + 1) * 16  # PKCS7 always pads, a full block when already aligned


def test_key_forms_and_env(tmp_path: Path, key_hex: str, monkeypatch: pytest.MonkeyPatch) -> None:
    raw = bytes.fromhex(key_hex)
    ascii_key = "0123456789abcdef0123456789ABCDEF"
    forms = [f"hex:{key_hex}", "base64:" + base64.b64encode(raw).decode(), raw]
    assert len({parse_key(f) for f in forms}) == 1
    assert parse_key(ascii_key).material == ascii_key.encode()
    assert parse_key("ключ" * 4).material == ("ключ" * 4).encode()  # 16 characters, 32 UTF-8 bytes
    SecureConfig(tmp_path / "s.enc", ascii_key).write({"x": "value-1"})
    monkeypatch.setenv("CONFIG_AES_KEY", ascii_key)
    assert SecureConfig(tmp_path / "s.enc").get("x") == "value-1"
    monkeypatch.setenv("OTHER_KEY", ascii_key)
    monkeypatch.delenv("CONFIG_AES_KEY")
    assert SecureConfig(tmp_path / "s.enc", key_env="OTHER_KEY").get("x") == "value-1"
    with pytest.raises(SecretKeyError, match="CONFIG_AES_KEY is not set"):
        SecureConfig(tmp_path / "s.enc")
    assert generate_key().startswith("base64:") and len(parse_key(generate_key()).material) == 32


@pytest.mark.parametrize("bad", [
    "k" * 31, "k" * 33, "", "k" * 32 + "\n", "é" * 16 + "k",  # 33 UTF-8 bytes
    "hex:" + "ab" * 31, "hex:" + "ab" * 33, "hex:" + "zz" * 32, "hex:" + "a" * 63,
    "base64:" + base64.b64encode(b"k" * 31).decode(), "base64:" + base64.b64encode(b"k" * 33).decode(),
    "base64:not*base64", b"k" * 31, b"k" * 33, 12345,
])
def test_bad_keys_name_the_form_and_never_echo(tmp_path: Path, bad: object) -> None:
    with pytest.raises(SecretKeyError) as err:
        SecureConfig(tmp_path / "s.enc", bad)  # type: ignore[arg-type]
    msg = str(err.value)
    assert "32 bytes" in msg and "base64:" in msg and "hex:" in msg
    if isinstance(bad, str) and len(bad) > 8:
        body = bad.split(":", 1)[-1]
        assert body not in msg and body[:12] not in msg


def test_key_env_must_be_a_name_and_is_not_echoed(tmp_path: Path) -> None:
    pasted = "base64:" + base64.b64encode(os.urandom(32)).decode()
    with pytest.raises(SecretKeyError) as err:
        SecureConfig(tmp_path / "s.enc", key_env=pasted)
    _leak_free(err.value, pasted, pasted[7:20])


def test_repr_and_pickle_never_show_the_key(tmp_path: Path, key: str, key_hex: str) -> None:
    store = SecureConfig(tmp_path / "s.enc", key)
    for text in (repr(store), str(store), repr(parse_key(key)), repr(vars(store) if hasattr(store, "__dict__")
                                                                      else store)):
        assert key_hex not in text and key_hex[:16] not in text
        assert str(bytes.fromhex(key_hex))[2:20] not in text
    with pytest.raises(TypeError):
        pickle.dumps(store)
    with pytest.raises(TypeError):
        pickle.dumps(parse_key(key))


def _openssl_encrypt(plaintext: bytes, key_hex: str, iv: bytes, tmp_path: Path, *extra: str) -> bytes:
    src = tmp_path / "plain.bin"
    src.write_bytes(plaintext)
    enc = subprocess.run([OPENSSL, "enc", "-aes-256-cbc", "-K", key_hex, "-iv", iv.hex(), "-in", str(src), *extra],
                         capture_output=True, check=True)
    src.unlink()
    return subprocess.run([OPENSSL, "base64"], input=enc.stdout, capture_output=True, check=True).stdout


def test_reads_a_file_made_by_openssl(tmp_path: Path) -> None:
    ascii_key = "Th1s-is-a-32-byte-ASCII-key-0042"
    key_hex = ascii_key.encode().hex()
    plaintext = json.dumps({"mt5_login": "51234567", "mt5_password": "from-openssl", "mt5_server": "Demo"}).encode()
    for _ in range(3):  # several random IVs: any byte value in the raw IV must be fine
        iv = os.urandom(16)
        b64 = _openssl_encrypt(plaintext, key_hex, iv, tmp_path)
        assert b64.count(b"\n") >= 2  # openssl wraps at 64 columns: line breaks are part of the layout
        path = tmp_path / "seed.enc"
        path.write_bytes(iv + b64)
        store = SecureConfig(path, ascii_key)
        assert store.format == "seed"
        assert store.get("mt5_password") == "from-openssl"
        assert store.load() == json.loads(plaintext)


def test_openssl_reads_a_seed_file_we_wrote(tmp_path: Path, key_hex: str) -> None:
    path = tmp_path / "s.enc"
    SecureConfig(path, f"hex:{key_hex}").write({"mt5_password": "to-openssl"}, "seed")
    raw = path.read_bytes()
    ct = tmp_path / "ct.bin"
    ct.write_bytes(base64.b64decode(raw[16:]))
    out = subprocess.run([OPENSSL, "enc", "-d", "-aes-256-cbc", "-K", key_hex, "-iv", raw[:16].hex(),
                          "-in", str(ct)], capture_output=True, check=True).stdout
    assert json.loads(out) == {"mt5_password": "to-openssl"}


def _write(tmp_path: Path, blob: bytes) -> Path:
    path = tmp_path / "bad.enc"
    path.write_bytes(blob)
    return path


def test_wrong_key(tmp_path: Path, key: str) -> None:
    store = SecureConfig(tmp_path / "s.enc", key)
    store.write(SECRETS, "v1")
    other = generate_key()
    with pytest.raises(WrongKeyError) as err:
        SecureConfig(tmp_path / "s.enc", other).get("mt5_password")
    assert not isinstance(err.value, TamperedSecretsError)
    _leak_free(err.value, key[4:], other[7:], "Pa55")
    store.write(SECRETS, "seed")
    for _ in range(20):  # CBC cannot authenticate: a wrong key must still never yield data or a raw error
        with pytest.raises(WrongKeyError):
            SecureConfig(tmp_path / "s.enc", generate_key()).load()


def test_truncated_iv_only_bad_base64_bad_padding(tmp_path: Path, key: str, key_hex: str) -> None:
    store = SecureConfig(tmp_path / "s.enc", key)
    store.write(SECRETS, "seed")
    seed = (tmp_path / "s.enc").read_bytes()
    store.write(SECRETS, "v1")
    v1 = (tmp_path / "s.enc").read_bytes()
    cases: list[tuple[bytes, type[SecretError]]] = [
        (b"", CorruptSecretsError),
        (seed[:10], CorruptSecretsError),                       # shorter than the IV
        (seed[:16], CorruptSecretsError),                       # IV only
        (seed[:16] + b"\n", CorruptSecretsError),               # IV and a newline
        (seed[:16] + b"!!!not base64!!!", CorruptSecretsError),
        (seed[:16] + seed[16:-4], CorruptSecretsError),         # base64 cut mid-quantum
        (seed[:16] + base64.b64encode(base64.b64decode(seed[16:])[:-16]), WrongKeyOrCorruptError),  # a block short
        (seed[:16] + base64.b64encode(base64.b64decode(seed[16:])[:-1]), CorruptSecretsError),  # not a block multiple
        (v1[:7], CorruptSecretsError),
        (v1[:30], CorruptSecretsError),
        (v1[:-1], TamperedSecretsError),                        # tag cut short
        (formats.MAGIC + bytes([9]) + v1[7:], SecretFormatError),  # a future version
        (b"ENGSEC", CorruptSecretsError),
        (b'{"db_password": "plain-pw-7"}', SecretFormatError),  # plaintext JSON, not encrypted
    ]
    # Bad padding: a last block that decrypts to a 0x00 pad byte, made with openssl -nopad.
    iv = os.urandom(16)
    nopad = _openssl_encrypt(b'{"a": "bbbbbbbbbbbbbbbbbbbbbb"}\x00', key_hex, iv, tmp_path, "-nopad")
    cases.append((iv + nopad, WrongKeyOrCorruptError))
    for blob, expected in cases:
        with pytest.raises(expected) as err:
            SecureConfig(_write(tmp_path, blob), key).load()
        _leak_free(err.value, key[4:], "Pa55", "bbbbbbbb", base64.b64encode(seed[16:40]), "plain-pw-7")


def test_every_tampered_byte_is_detected_in_v1(tmp_path: Path, key: str) -> None:
    store = SecureConfig(tmp_path / "s.enc", key)
    store.write(SECRETS, "v1")
    good = (tmp_path / "s.enc").read_bytes()
    header = len(formats.MAGIC) + 1 + formats.CHECK_BYTES
    for i in range(len(good)):
        blob = bytearray(good)
        blob[i] ^= 0x01
        with pytest.raises(SecretError) as err:
            SecureConfig(_write(tmp_path, bytes(blob)), key).load()
        if i >= header:  # nonce, ciphertext, tag: authentication fails
            assert type(err.value) is TamperedSecretsError
        elif i >= len(formats.MAGIC) + 1:
            assert type(err.value) is WrongKeyError  # the key check no longer matches
        _leak_free(err.value, "Pa55", "Broker")


@pytest.mark.parametrize("fmt", ["v1", "seed"])
@pytest.mark.parametrize(("plaintext", "problem"), [
    (b"not json at all", "not JSON"),
    (b"[1, 2, 3]", "array"),
    (b'"just a string"', "string"),
    (b"null", "null"),
    (b'{"a": "secret-one", "a": "secret-two"}', "more than once"),
    (b"\xff\xfe{}", "UTF-8"),
])
def test_content_that_is_not_a_json_object(tmp_path: Path, key: str, fmt: str, plaintext: bytes,
                                           problem: str) -> None:
    k = parse_key(key)
    blob = formats.encrypt_v1(plaintext, k) if fmt == "v1" else formats.encrypt_seed(plaintext, k)
    with pytest.raises((SecretContentError, WrongKeyOrCorruptError)) as err:
        SecureConfig(_write(tmp_path, blob), key).load()
    assert problem in str(err.value) or (problem == "UTF-8" and isinstance(err.value, WrongKeyOrCorruptError))
    _leak_free(err.value, "secret-one", "secret-two", "not json", "just a string")
    assert err.value.__context__ is None and err.value.__cause__ is None


def test_missing_name_file_and_unwritable(tmp_path: Path, key: str) -> None:
    with pytest.raises(SecretsFileError, match="does not exist"):
        SecureConfig(tmp_path / "absent.enc", key).get("x")
    with pytest.raises(SecretsFileError, match="directory"):
        SecureConfig(tmp_path, key).get("x")
    store = SecureConfig(tmp_path / "s.enc", key)
    store.write({"present": "value-xyz"})
    with pytest.raises(MissingSecretError) as err:
        store.get("absent")
    assert "present" in str(err.value) and "value-xyz" not in str(err.value)
    assert isinstance(err.value, LookupError)
    with pytest.raises(SecretsFileError, match="does not exist"):
        SecureConfig(tmp_path / "no" / "dir.enc", key).write({"a": "b"})
    with pytest.raises(SecretContentError):
        store.write({"a": object()})
    assert store.get("present") == "value-xyz"  # failed writes changed nothing


def test_set_delete_and_rotate(tmp_path: Path, key: str) -> None:
    path = tmp_path / "s.enc"
    store = SecureConfig(path, key)
    store.set("db_password", "first-value")
    assert store.format == "v1"
    store.write({"db_password": "first-value", "other": "x-y-z-w"}, "seed")
    store.set("db_password", "second-value")
    assert store.format == "seed" and store.get("db_password") == "second-value"
    store.delete("other")
    assert store.names() == ["db_password"]
    new_key = generate_key()
    rotated = store.rotate(new_key)
    assert rotated.format == "v1" and rotated.get("db_password") == "second-value"
    with pytest.raises(WrongKeyError):
        store.get("db_password")
    again = rotated.rotate(fmt="seed")  # same key, format only
    assert again.format == "seed" and SecureConfig(path, new_key).get("db_password") == "second-value"
    assert [p.name for p in tmp_path.iterdir()] == ["s.enc"]  # no temp files left behind


def test_a_file_rotated_under_a_wrong_old_key_is_left_alone(tmp_path: Path, key: str) -> None:
    path = tmp_path / "s.enc"
    SecureConfig(path, key).write({"a": "keep-me"}, "seed")
    before = path.read_bytes()
    with pytest.raises(WrongKeyError):
        SecureConfig(path, generate_key()).rotate(generate_key())
    assert path.read_bytes() == before


def test_key_object_hides_material() -> None:
    k = Key(b"\x01" * 32)
    assert "\\x01" not in repr(k) and "01" * 4 not in str(k)
    with pytest.raises(SecretKeyError):
        Key(b"\x01" * 16)


def test_a_file_readable_by_others_is_reported_once(tmp_path: Path, key: str,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "shared.enc"
    store = SecureConfig(path, key)
    store.write({"a": "value-abc"})
    store.get("a")
    assert "chmod 600" not in caplog.text  # written 0600: nothing to say
    path.chmod(0o644)
    store.get("a")
    store.get("a")
    assert caplog.text.count("chmod 600") == 1 and "644" in caplog.text
