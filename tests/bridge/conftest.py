"""Bridge tests reuse the connector fixtures (servers on 127.0.0.1, fake MetaTrader5 module)."""

from tests.connectors.conftest import (  # noqa: F401 - fixtures re-exported for pytest
    BridgeUnderTest,
    bridge,
    make_bridge,
    make_client,
    make_simulator,
    sample_bars,
    simulator,
)
