"""Execution tests run orders over real HTTP against the simulator: they share the MT5 test servers."""

from tests.mt5.conftest import (  # noqa: F401 - fixtures re-exported for pytest
    client,
    make_client,
    make_simulator,
    sample_bars,
    simulator,
)
