"""engine's Optuna sweeper for Hydra (``hydra/sweeper=engine_optuna``), over Optuna's public API.

Hydra finds it by scanning the ``hydra_plugins`` namespace package; ``pip install -e .`` installs it.
"""
