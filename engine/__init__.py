"""engine: a config-driven ML trading engine for BTC/USD on MetaTrader 5.

Import components from their modules (``engine.storage.timescaledb`` etc.); this package root stays
empty so that ``python -m engine --help`` does not pay for pandas, torch or mlflow.
"""

__version__ = "0.1.0"
