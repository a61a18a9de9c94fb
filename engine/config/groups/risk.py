"""Schema of the ``risk`` group: the RiskManager's limits (default, conservative).

The schema is generated from :class:`engine.trading.risk_rules.RiskLimits`, the limits' single source of
fields, defaults and bounds; building the node gives that frozen RiskLimits, which the composition root
hands to ``RiskManager.from_limits(client, limits, store=...)``. A typo (``risk.max_drawdwn``) or an
out-of-range value (``risk.max_drawdown=5``) fails at composition, before any work.
"""

from __future__ import annotations

from engine.config.derive import schema_from
from engine.trading.risk_rules import RiskLimits

RiskConfig = schema_from(RiskLimits, target="engine.trading.risk_rules.RiskLimits", name="RiskConfig")

# Both options share the schema; they differ only in their YAML values (conf/risk/*.yaml).
SCHEMAS: dict[str, dict[str, type]] = {"risk": {"default": RiskConfig, "conservative": RiskConfig}}
