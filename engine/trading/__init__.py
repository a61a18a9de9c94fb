"""Trading: the next-bar backtest (pure), and later execution, risk and the live loop."""
