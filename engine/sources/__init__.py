"""Where bars come from: the bundled sample, a CSV/Parquet file, a store, or MT5 over REST.

Every source is an object with ``load_bars(symbol, timeframe) -> DataFrame`` that returns a frame
meeting the bar contract (engine.data.frames). Sources do I/O; they never clean or transform.
"""
