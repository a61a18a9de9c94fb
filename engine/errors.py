"""One exception tree for the whole engine, grouped by what the operator has to do.

- ``RetryableError``: temporary (timeouts, 5xx, 429, dropped connections); safe to retry with backoff.
- ``OperationalError``: needs a human (bad credentials, wrong configuration, missing server binary).
- ``RejectedError``: a broker or risk decision refused an action; retrying unchanged will not help.
- ``DataQualityError``: input data breaks a contract (columns, dtypes, ordering, gaps).
- ``ConfigError``: a composed config is invalid; raised before any data is touched.
- ``SecretError``: a secret could not be read or written (key, file, format, name).

The whole tree (``(X)`` = also derives from the built-in X, so plain Python callers keep working)::

    EngineError
    ├── ConfigError (ValueError)
    ├── DataQualityError (ValueError)
    ├── RetryableError
    │   ├── NetworkError
    │   ├── RequestTimeoutError
    │   ├── ServerError
    │   └── RequoteError
    ├── OperationalError
    │   ├── StorageError
    │   ├── AuthError
    │   ├── BadResponseError
    │   ├── OrderStateUnknownError
    │   ├── DVCUnavailableError
    │   ├── DVCCommandError
    │   └── DVCTrackError
    ├── RejectedError
    │   ├── InvalidRequestError (ValueError)
    │   ├── OrderRejectedError
    │   └── RiskRefusedError
    └── SecretError
        ├── SecretKeyError (ValueError)
        ├── SecretsFileError
        ├── SecretFormatError
        ├── CorruptSecretsError
        │   ├── TamperedSecretsError
        │   ├── SecretContentError
        │   └── WrongKeyOrCorruptError (also a WrongKeyError)
        ├── WrongKeyError
        ├── MissingSecretError (LookupError)
        └── SecretReferenceError

Every class derives from ``EngineError`` so callers can catch the engine's errors in one place.
Messages name the problem and the fix; they never contain secret values. Modules raise these classes
(or subclasses of them, e.g. the config resolver's SecretReferenceError that is also OmegaConf's
resolution error) rather than defining trees of their own; a test keeps this picture in step with the code.
"""

from __future__ import annotations


class EngineError(Exception):
    """Base class of every error raised on purpose by engine."""


class ConfigError(EngineError, ValueError):
    """A configuration value is missing, unknown or out of range."""

    def __init__(self, key: str, problem: str) -> None:
        self.key = key
        self.problem = problem
        super().__init__(f"{key}: {problem}")


class RetryableError(EngineError):
    """A temporary failure; the same call may succeed later."""


class OperationalError(EngineError):
    """A failure an operator has to fix (credentials, configuration, infrastructure)."""


class RejectedError(EngineError):
    """A request was understood and refused (by the broker, the risk manager or a validator)."""


class DataQualityError(EngineError, ValueError):
    """Input data violates the frame contract (see docs/data_contracts.md)."""


class StorageError(OperationalError):
    """The store could not read or write; nothing already stored was changed."""


# -- DVC (engine.tracking.dvc) ---------------------------------------------------------------------
class DVCUnavailableError(OperationalError):
    """DVC cannot run here: no ``dvc`` executable, or not a git/DVC repository. The message says what to run."""


class DVCCommandError(OperationalError):
    """A ``dvc`` command failed where the caller required success (``DVCResult.check``)."""


class DVCTrackError(OperationalError):
    """A path cannot be versioned as it is: git ignores its ``.dvc`` file, ``.dvcignore`` hides it, or it
    overlaps an output that DVC already tracks (a pipeline stage, a folder's ``.dvc`` file)."""


class SecretError(EngineError):
    """A secret could not be read or written. Messages never carry key, plaintext or ciphertext."""

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


class SecretReferenceError(SecretError):
    """A ``${secret:name}`` reference in the config cannot be resolved (no file configured, unknown name)."""


# -- MT5 over REST (engine.mt5, engine.trading.execution) ------------------------------------------
class NetworkError(RetryableError):
    """The server could not be reached or dropped the connection; the request may or may not have run."""


class RequestTimeoutError(RetryableError):
    """No answer within the configured connect/read timeout."""


class ServerError(RetryableError):
    """The server answered 5xx or 429; ``retry_after`` (seconds) is set when it asked for a pause."""

    def __init__(self, message: str, *, status: int | None = None, retry_after: float | None = None) -> None:
        self.status = status
        self.retry_after = retry_after
        super().__init__(message)


class AuthError(OperationalError):
    """The server refused the credentials (HTTP 401/403): fix the API key, retrying will not help."""


class BadResponseError(OperationalError):
    """The server answered something that breaks the REST contract (HTML page, malformed JSON, missing
    fields): usually a wrong base_url, a proxy in the way or an incompatible bridge version."""


class InvalidRequestError(RejectedError, ValueError):
    """A request was refused as invalid (unknown symbol, bad timeframe, start after end, too many bars)."""

    def __init__(self, message: str, *, status: int = 400) -> None:
        self.status = status
        super().__init__(message)


class OrderRejectedError(RejectedError):
    """The broker refused an order; ``retcode`` is MT5's trade return code, ``result`` the full answer."""

    def __init__(self, message: str, *, retcode: int, result: dict | None = None) -> None:
        self.retcode = retcode
        self.result = result or {}
        super().__init__(message)


class RiskRefusedError(RejectedError):
    """The RiskManager bound to the order path refused an order before it was sent; ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(f"risk: {reason}")


class RequoteError(RetryableError):
    """The price moved (MT5 10004/10020/10021): re-price and send again with a fresh decision."""

    def __init__(self, message: str, *, retcode: int, result: dict | None = None) -> None:
        self.retcode = retcode
        self.result = result or {}
        super().__init__(message)


class OrderStateUnknownError(OperationalError):
    """An order's fate is unknown after every retry and reconciliation: check the terminal before trading on."""
