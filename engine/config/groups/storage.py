"""Schemas of the ``storage`` group, generated from the stores' constructors (their parameters are the
settings: names, types and defaults come from there, so a new store option is a config key at once).

The stores declare no ranges of their own, so the few this layer enforces before any work are attached here.
"""

from __future__ import annotations

from engine.config.derive import schema_from
from engine.fields import bounded, choice
from engine.storage.parquet import ParquetStore
from engine.storage.timescaledb import _SSLMODES, TimescaleDBClient

ParquetStorageConfig = schema_from(ParquetStore, target="engine.storage.parquet.ParquetStore",
                                   name="ParquetStorageConfig", defaults={"root": "${paths.raw}"})

TimescaleStorageConfig = schema_from(
    TimescaleDBClient, target="engine.storage.timescaledb.TimescaleDBClient", name="TimescaleStorageConfig",
    defaults={"host": "localhost", "port": 5432, "dbname": "engine", "user": "engine",
              "password": "${secret:db_password}"},
    meta={"port": bounded(None, ge=1, le=65535).metadata, "sslmode": choice(None, _SSLMODES).metadata,
          "connect_timeout": bounded(None, ge=1, le=300).metadata,
          "retries": bounded(None, ge=0, le=100).metadata, "retry_base": bounded(None, gt=0).metadata,
          "retry_cap": bounded(None, gt=0).metadata, "statement_timeout_ms": bounded(None, ge=0).metadata},
)

SCHEMAS: dict[str, dict[str, type]] = {
    "storage": {"parquet": ParquetStorageConfig, "timescaledb": TimescaleStorageConfig},
}
