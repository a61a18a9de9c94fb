"""``python -m engine.secrets`` end to end, in subprocesses with the key only in the environment."""

from __future__ import annotations

import base64
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from engine.secrets import SecureConfig, generate_key
from engine.secrets.cli import main

VALUE = "cli-canary-4f1e9b"


def _cli(*args: str, key: str | None, stdin: str | None = None, **env: str) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if not k.startswith("CONFIG_AES_KEY")}
    if key is not None:
        full["CONFIG_AES_KEY"] = key
    full.update(env)
    return subprocess.run([sys.executable, "-m", "engine.secrets", *args], env=full, input=stdin,
                          capture_output=True, text=True, timeout=60)


def test_encrypt_names_get_decrypt(tmp_path: Path, key: str) -> None:
    plain = tmp_path / "plain.json"
    plain.write_text(json.dumps({"db_password": VALUE, "mt5_login": 123456}))
    out = tmp_path / "secrets.enc"
    proc = _cli("encrypt", str(plain), "-o", str(out), key=key)
    assert proc.returncode == 0, proc.stderr
    assert VALUE not in proc.stdout + proc.stderr
    assert SecureConfig(out, key).format == "v1" and SecureConfig(out, key).get("db_password") == VALUE
    assert _cli("encrypt", str(plain), "-o", str(out), key=key).returncode == 1  # refuses to overwrite

    names = _cli("names", str(out), key=key)
    assert names.stdout.split() == ["db_password", "mt5_login"]
    hidden = _cli("get", str(out), "db_password", key=key)
    assert hidden.returncode == 0 and VALUE not in hidden.stdout + hidden.stderr and "--show" in hidden.stderr
    shown = _cli("get", str(out), "db_password", "--show", key=key)
    assert shown.stdout == VALUE + "\n"
    masked = _cli("decrypt", str(out), key=key)
    assert json.loads(masked.stdout) == {"db_password": "***", "mt5_login": "***"} and VALUE not in masked.stderr
    full = _cli("decrypt", str(out), "--show", key=key)
    assert json.loads(full.stdout) == {"db_password": VALUE, "mt5_login": 123456}
    dest = tmp_path / "out.json"
    assert _cli("decrypt", str(out), "-o", str(dest), key=key).returncode == 0
    assert json.loads(dest.read_text())["db_password"] == VALUE and dest.stat().st_mode & 0o777 == 0o600
    # an existing world-readable file is narrowed before plaintext lands in it; a symlink is refused
    dest.chmod(0o644)
    assert _cli("decrypt", str(out), "-o", str(dest), key=key).returncode == 0
    assert dest.stat().st_mode & 0o777 == 0o600
    target, link = tmp_path / "elsewhere.json", tmp_path / "link.json"
    link.symlink_to(target)
    refused = _cli("decrypt", str(out), "-o", str(link), key=key)
    assert refused.returncode == 1 and "symlinks are refused" in refused.stderr and not target.exists()


def test_set_reads_stdin_and_seed_files_keep_their_format(tmp_path: Path, key: str) -> None:
    out = tmp_path / "secrets.enc"
    proc = _cli("set", str(out), "db_password", "--format", "seed", key=key, stdin=VALUE + "\n")
    assert proc.returncode == 0, proc.stderr
    assert SecureConfig(out, key).format == "seed" and SecureConfig(out, key).get("db_password") == VALUE
    assert _cli("set", str(out), "other", key=key, stdin="another-value").returncode == 0
    assert SecureConfig(out, key).format == "seed" and SecureConfig(out, key).get("other") == "another-value"
    empty = _cli("set", str(out), "other", key=key, stdin="")
    assert empty.returncode == 1 and SecureConfig(out, key).get("other") == "another-value"


def test_rotate_to_a_new_key_and_format(tmp_path: Path, key: str) -> None:
    out = tmp_path / "secrets.enc"
    SecureConfig(out, key).write({"db_password": VALUE}, "seed")
    new = generate_key()
    proc = _cli("rotate", str(out), key=key, CONFIG_AES_KEY_NEW=new)
    assert proc.returncode == 0, proc.stderr
    assert "seed -> v1" in proc.stderr and "new key" in proc.stderr
    assert new[7:] not in proc.stdout + proc.stderr and key[4:] not in proc.stdout + proc.stderr
    assert SecureConfig(out, new).get("db_password") == VALUE
    old = _cli("get", str(out), "db_password", key=key)
    assert old.returncode == 1 and "WrongKeyError" in old.stderr
    same = _cli("rotate", str(out), "--format", "seed", key=new)  # no new key: format only
    assert same.returncode == 0 and SecureConfig(out, new).format == "seed"


def test_keygen_and_key_never_from_argv(tmp_path: Path, key: str) -> None:
    made = _cli("keygen", key=None).stdout.strip()
    assert made.startswith("base64:")
    SecureConfig(tmp_path / "k.enc", made).write({"a": "bcde"})  # the printed key is usable
    for flag in ("--key", "-k", "--aes-key", "--key-e"):
        proc = _cli("names", str(tmp_path / "k.enc"), flag, made, key=None)
        assert proc.returncode == 2 and made[7:] not in proc.stderr and "not shown" in proc.stderr


@pytest.mark.parametrize(("args", "env_key", "expected"), [
    (["names", "{f}"], None, "CONFIG_AES_KEY is not set"),
    (["names", "{f}"], "k" * 31, "31 bytes"),
    (["names", "{f}", "--key-env", "{k}"], "{k}", "NAME of an environment variable"),
    (["get", "{f}", "absent"], "{k}", "no secret named NAME (names in FILE: db_password)"),
    (["names", "{f}.missing"], "{k}", "does not exist"),
    (["names", "{f}"], "wrong", "WrongKeyError"),
])
def test_errors_are_one_line_and_leak_free(tmp_path: Path, key: str, args: list[str], env_key: str | None,
                                           expected: str) -> None:
    f = tmp_path / "s.enc"
    SecureConfig(f, key).write({"db_password": VALUE})
    env_value = {None: None, "wrong": generate_key()}.get(env_key, env_key)
    if env_value is not None:
        env_value = env_value.replace("{k}", key)
    argv = [a.replace("{f}", str(f)).replace("{k}", key) for a in args]
    proc = _cli(*argv, key=env_value)
    assert proc.returncode == 1
    assert expected in proc.stderr and "Traceback" not in proc.stderr
    assert VALUE not in proc.stdout + proc.stderr
    assert key[4:] not in proc.stderr and key[4:20] not in proc.stderr


# Keys typed where they do not belong, in each accepted form: base64 (with '/' so a path split would
# cut it in two), hex, and the seed's 32-character passphrase (which is also a valid variable name).
TYPED_KEYS = {
    "base64": "base64:" + base64.b64encode(bytes(range(200, 232))).decode(),
    "hex": "hex:" + bytes(range(100, 132)).hex(),
    "passphrase": "Kx9vQ2mW7tLp4ZrB8nYc3HdF6sJg1UeA",
}
assert "/" in TYPED_KEYS["base64"]

# Every argument position of every command, "{K}" standing for the typed key.
POSITIONS = {
    "command": ["{K}"],
    "command after keygen": ["keygen", "{K}"],
    "--format of encrypt": ["encrypt", "{plain}", "-o", "{new}", "--format", "{K}"],
    "--format= of rotate": ["rotate", "{f}", "--format={K}"],
    "--format of set": ["set", "{f}", "other", "--format", "{K}"],
    "FILE of names": ["names", "{K}"],
    "FILE of get": ["get", "{K}", "db_password"],
    "FILE of decrypt": ["decrypt", "{K}"],
    "FILE of rotate": ["rotate", "{K}"],
    "FILE of set": ["set", "{K}", "other"],
    "FILE under a folder": ["names", "{tmp}/{K}"],
    "NAME of get": ["get", "{f}", "{K}"],
    "NAME of set": ["set", "{f}", "{K}"],
    "PLAINTEXT of encrypt": ["encrypt", "{K}", "-o", "{new}"],
    "OUT of encrypt": ["encrypt", "{plain}", "-o", "{K}"],
    "OUT of decrypt": ["decrypt", "{f}", "-o", "{K}"],
    "--key-env": ["names", "{f}", "--key-env", "{K}"],
    "--new-key-env": ["rotate", "{f}", "--new-key-env", "{K}"],
    "a value given to a flag": ["get", "{f}", "db_password", "--show={K}"],
    "an extra argument": ["names", "{f}", "{K}"],
    "an unknown option": ["names", "{f}", "--key", "{K}"],
}


def _fragments(text: str, size: int = 12) -> list[str]:
    return [text[i:i + size] for i in range(len(text) - size + 1)]


@pytest.mark.parametrize("form", sorted(TYPED_KEYS))
@pytest.mark.parametrize("position", sorted(POSITIONS))
def test_a_key_typed_in_any_position_is_never_printed_back(
        tmp_path: Path, key: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        position: str, form: str) -> None:
    typed = TYPED_KEYS[form]
    monkeypatch.chdir(tmp_path)  # a key typed as a bare file name may become a file: keep it in tmp_path
    monkeypatch.setenv("CONFIG_AES_KEY", key)
    monkeypatch.setattr("sys.stdin", io.StringIO("a-value-from-stdin\n"))
    f, plain = tmp_path / "s.enc", tmp_path / "plain.json"
    SecureConfig(f, key).write({"db_password": VALUE})
    plain.write_text(json.dumps({"db_password": VALUE}))
    fill = {"{K}": typed, "{f}": str(f), "{plain}": str(plain), "{new}": str(tmp_path / "new.enc"),
            "{tmp}": str(tmp_path)}
    argv = []
    for arg in POSITIONS[position]:
        for placeholder, value in fill.items():
            arg = arg.replace(placeholder, value)
        argv.append(arg)

    try:
        code = main(argv)
    except SystemExit as exc:  # argparse's own way out is allowed; what it prints is checked the same
        code = exc.code
    out, err = capsys.readouterr()
    printed = out + err
    leaked = [frag for frag in _fragments(typed) if frag in printed]
    assert not leaked, f"{position}: exit {code}, printed {leaked[:3]} of the typed key:\n{printed}"
    assert VALUE not in printed
    assert code in (0, 1, 2) and (code == 0 or err.strip())  # a refusal still says what is wrong


def test_refusals_name_the_role_of_what_was_typed(tmp_path: Path, key: str, monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    typed = TYPED_KEYS["base64"]
    monkeypatch.setenv("CONFIG_AES_KEY", key)
    assert main([typed]) == 2
    assert "invalid choice (not shown" in capsys.readouterr().err
    assert main(["rotate", str(tmp_path / "x"), "--format", typed]) == 2
    assert "argument --format: invalid choice (not shown: it may hold a secret); choose from 'v1', 'seed'" in \
        capsys.readouterr().err
    assert main(["names", typed]) == 1
    assert "secrets file FILE does not exist" in capsys.readouterr().err
    assert main(["names", str(tmp_path), "--key-env", TYPED_KEYS["passphrase"]]) == 1
    assert "environment variable <hidden> is not set" in capsys.readouterr().err
