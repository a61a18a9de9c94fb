"""Encrypted secrets: :class:`SecureConfig`, the seed and v1 formats, and ``python -m engine.secrets``.

See docs/secrets.md for the threat model and how to create, rotate and use a secrets file.
"""

from engine.errors import (
    CorruptSecretsError,
    MissingSecretError,
    SecretContentError,
    SecretError,
    SecretFormatError,
    SecretKeyError,
    SecretReferenceError,
    SecretsFileError,
    TamperedSecretsError,
    WrongKeyError,
    WrongKeyOrCorruptError,
)
from engine.secrets.formats import DEFAULT_FORMAT, FORMATS
from engine.secrets.keys import DEFAULT_KEY_ENV, Key, generate_key, key_from_env, parse_key
from engine.secrets.store import SecureConfig

__all__ = [
    "DEFAULT_FORMAT",
    "DEFAULT_KEY_ENV",
    "FORMATS",
    "CorruptSecretsError",
    "Key",
    "MissingSecretError",
    "SecretContentError",
    "SecretError",
    "SecretFormatError",
    "SecretKeyError",
    "SecretReferenceError",
    "SecretsFileError",
    "SecureConfig",
    "TamperedSecretsError",
    "WrongKeyError",
    "WrongKeyOrCorruptError",
    "generate_key",
    "key_from_env",
    "parse_key",
]
