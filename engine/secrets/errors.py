"""The typed errors of ``engine.secrets``, all :class:`engine.errors.SecretError`.

Messages name the file, the format, a secret's *name* or a length; never a key, a plaintext value or
ciphertext. Errors are raised outside ``except`` blocks where the library exception could carry data
(``json.JSONDecodeError.doc`` holds the whole document), so no secret rides along as ``__context__``.
"""

from __future__ import annotations

from engine.errors import SecretError

__all__ = [
    "CorruptSecretsError",
    "MissingSecretError",
    "SecretContentError",
    "SecretError",
    "SecretFormatError",
    "SecretKeyError",
    "SecretsFileError",
    "TamperedSecretsError",
    "WrongKeyError",
    "WrongKeyOrCorruptError",
]


class SecretKeyError(SecretError, ValueError):
    """The key is missing or not in an accepted form (32 bytes, ``base64:``, ``hex:``)."""


class SecretsFileError(SecretError):
    """The secrets file cannot be read or written (missing, permissions, a directory)."""


class SecretFormatError(SecretError):
    """The file is not in a format this version reads (unknown header version, not a secrets file)."""


class CorruptSecretsError(SecretError):
    """The file is damaged: truncated, bad base64, a ciphertext length no block cipher produces."""


class TamperedSecretsError(CorruptSecretsError):
    """The authenticated format's tag does not verify: the file was modified after it was written."""


class SecretContentError(CorruptSecretsError):
    """The file decrypts, but not to a UTF-8 JSON object with unique names."""


class WrongKeyError(SecretError):
    """The key does not open this file."""


class WrongKeyOrCorruptError(WrongKeyError, CorruptSecretsError):
    """The unauthenticated seed format failed to decrypt: a wrong key and a damaged file look the same."""


class MissingSecretError(SecretError, LookupError):
    """The file has no secret of that name."""
