"""One exception tree for the whole engine, grouped by what the operator has to do.

- ``RetryableError``: temporary (timeouts, 5xx, 429, dropped connections); safe to retry with backoff.
- ``OperationalError``: needs a human (bad credentials, wrong configuration, missing server binary).
- ``RejectedError``: a broker or risk decision refused an action; retrying unchanged will not help.
- ``DataQualityError``: input data breaks a contract (columns, dtypes, ordering, gaps).
- ``ConfigError``: a composed config is invalid; raised before any data is touched.

Every class derives from ``EngineError`` so callers can catch the engine's errors in one place, and
the value-like ones also derive from ``ValueError`` so plain Python callers keep working.
Messages name the problem and the fix; they never contain secret values.
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


class SecretError(EngineError):
    """A secret could not be read or written. Messages never carry key, plaintext or ciphertext."""
