"""Real-time ingestion: :class:`DataIngestor` reads ticks and closed bars from an MT5 feed into a store."""

from engine.ingest.ingestor import COUNTERS, Cleaner, DataIngestor
from engine.ingest.poll import Feed
from engine.ingest.settings import IngestSettings

__all__ = ["COUNTERS", "Cleaner", "DataIngestor", "Feed", "IngestSettings"]
