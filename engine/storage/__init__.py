"""Stores for bars and ticks: Parquet files (embedded default) and TimescaleDB/PostgreSQL."""
