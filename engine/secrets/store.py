"""``SecureConfig``: an encrypted JSON object of named secrets on disk.

The file is read and decrypted on every call and nothing decrypted is cached, so a rotated file is
picked up at once and a long-lived object holds only the key. Every value handed out by :meth:`get`
is registered with the redaction layer (``engine.redact``) so logs and MLflow mask it.
"""

from __future__ import annotations

import logging
import os
import secrets as _random
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from engine.errors import MissingSecretError, SecretError, SecretsFileError
from engine.redact import remember_all
from engine.secrets import formats
from engine.secrets.keys import DEFAULT_KEY_ENV, Key, key_from_env, parse_key

_NO_DEFAULT: Any = object()
_warned: set[str] = set()  # paths already warned about (mode too open), to warn once per process
log = logging.getLogger(__name__)


class SecureConfig:
    """Named secrets in an encrypted file.

    ``key`` may be a :class:`Key`, bytes, or a string in an accepted form; ``None`` reads the
    environment variable ``key_env`` (``CONFIG_AES_KEY``). The key is parsed here, so a bad or missing
    key fails at construction with an error naming the expected form.

    ``label`` is how error messages name the file (default: its path). The CLI passes ``FILE`` so that
    whatever was typed there, a pasted key included, is never printed back.
    """

    def __init__(self, path: str | os.PathLike[str], key: str | bytes | Key | None = None, *,
                 key_env: str = DEFAULT_KEY_ENV, label: str | None = None) -> None:
        self.path = Path(path)
        self.key_env = key_env
        self.label = str(self.path) if label is None else label
        self._key = key_from_env(key_env) if key is None else parse_key(key)

    def __repr__(self) -> str:
        return f"SecureConfig(path={str(self.path)!r}, key=<hidden>)"

    __str__ = __repr__

    def __reduce__(self) -> tuple[object, ...]:
        raise TypeError("SecureConfig holds a key and cannot be pickled; build one in each process from the "
                        "environment")

    # -- reading ----------------------------------------------------------------------------------
    def _read(self) -> bytes:
        problem: str | None = None
        try:
            with open(self.path, "rb") as fh:
                blob = fh.read(formats.MAX_FILE_BYTES + 1)
        except FileNotFoundError:
            problem = ("does not exist; create it with `python -m engine.secrets encrypt PLAIN.json -o FILE` "
                       "or `... set FILE NAME`")
        except IsADirectoryError:
            problem = "is a directory, not a secrets file"
        except PermissionError:
            problem = "is not readable by this user; fix its owner or mode (0600 is recommended)"
        except OSError as exc:
            problem = f"cannot be read ({exc.strerror or type(exc).__name__})"
        if problem is not None:
            raise SecretsFileError(f"secrets file {self.label} {problem}")
        _warn_if_shared(self.path)
        return blob

    def _decrypt(self) -> tuple[dict[str, Any], formats.Format]:
        blob = self._read()
        try:
            return formats.decrypt(blob, self._key)
        except SecretError as exc:  # same type, with the file named; our messages carry no secret data
            failure: SecretError = type(exc)(f"secrets file {self.label}: {exc}")
        raise failure

    @property
    def format(self) -> formats.Format:
        """The file's format, ``v1`` or ``seed`` (read from the file, which must decrypt)."""
        return self._decrypt()[1]

    def names(self) -> list[str]:
        return sorted(self._decrypt()[0])

    def __contains__(self, name: object) -> bool:
        return name in self._decrypt()[0]

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def load(self) -> dict[str, Any]:
        """Every secret, decrypted. The caller owns the plaintext: prefer :meth:`get`."""
        data, _ = self._decrypt()
        for value in data.values():
            remember_all(value)
        return data

    def get(self, name: str, default: Any = _NO_DEFAULT) -> Any:
        """The secret ``name``; ``default`` when it is absent, or MissingSecretError without one."""
        data, _ = self._decrypt()
        if name in data:
            value = data[name]
            remember_all(value)
            return value
        if default is not _NO_DEFAULT:
            return default
        known = ", ".join(sorted(data)) or "none"
        raise MissingSecretError(f"secrets file {self.label} has no secret named {name!r} (names: {known}); add it "
                                 f"with `python -m engine.secrets set {self.label} {name}`")

    # -- writing ----------------------------------------------------------------------------------
    def write(self, data: Mapping[str, Any], fmt: str = formats.DEFAULT_FORMAT) -> None:
        """Replace the file's content with ``data`` (atomically; the new file is mode 0600)."""
        blob = formats.encrypt(data, self._key, fmt)
        _atomic_write(self.path, blob, self._key, self.label)

    def set(self, name: str, value: Any, fmt: str | None = None) -> None:
        """Add or replace one secret; a new file is created in ``fmt`` (default v1), an existing one keeps
        its format unless ``fmt`` is given."""
        if self.path.exists():
            data, current = self._decrypt()
        else:
            data, current = {}, formats.DEFAULT_FORMAT
        data[name] = value
        self.write(data, fmt or current)

    def delete(self, name: str) -> None:
        data, current = self._decrypt()
        if name not in data:
            raise MissingSecretError(f"secrets file {self.label} has no secret named {name!r}")
        del data[name]
        self.write(data, current)

    def rotate(self, new_key: str | bytes | Key | None = None, fmt: str = formats.DEFAULT_FORMAT) -> SecureConfig:
        """Re-encrypt the file under ``new_key`` (default: the same key) in ``fmt`` (default v1).

        The new file is decrypted with the new key before it replaces the old one, so an interrupted or
        faulty rotation leaves the old file in place. Returns a SecureConfig holding the new key.
        """
        data, _ = self._decrypt()
        key = self._key if new_key is None else parse_key(new_key)
        rotated = SecureConfig(self.path, key, key_env=self.key_env, label=self.label)
        _atomic_write(self.path, formats.encrypt(data, key, fmt), key, self.label)
        return rotated


def _warn_if_shared(path: Path) -> None:
    """Encrypted or not, a secrets file readable by others widens who can attack it offline; say so once."""
    try:
        mode = path.stat().st_mode & 0o777
    except OSError:
        return
    if mode & 0o077 and str(path) not in _warned:
        _warned.add(str(path))
        log.warning("secrets file %s has mode %03o (readable or writable by group/others); run chmod 600 %s",
                    path, mode, path)


def _atomic_write(path: Path, blob: bytes, key: Key, label: str) -> None:
    """Write ``blob`` beside ``path`` (0600), check it decrypts, fsync, then rename over ``path``.
    Errors name the file by ``label`` and never by a part of its path (see SecureConfig)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{_random.token_hex(6)}.tmp")
    problem: str | None = None
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(blob)
                fh.flush()
                os.fsync(fh.fileno())
            formats.decrypt(tmp.read_bytes(), key)
            os.replace(tmp, path)
        finally:
            if tmp.exists():
                tmp.unlink()
    except FileNotFoundError:
        problem = "its folder does not exist"
    except PermissionError:
        problem = "its folder is not writable by this user"
    except OSError as exc:
        problem = f"cannot be written ({exc.strerror or type(exc).__name__})"
    if problem is not None:
        raise SecretsFileError(f"secrets file {label}: {problem}; nothing was changed")
    try:  # make the rename durable; not all filesystems allow fsync on a directory
        dir_fd = os.open(path.parent, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)
