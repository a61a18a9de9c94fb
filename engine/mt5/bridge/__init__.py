"""Reference REST bridge over the Windows-only MetaTrader5 package: ``python -m engine.mt5.bridge``.

Importing this package never imports MetaTrader5; the package is loaded when a bridge starts.
"""

from engine.mt5.bridge.backend import MT5Backend

__all__ = ["MT5Backend"]
