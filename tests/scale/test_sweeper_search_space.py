"""engine's Optuna sweeper: Hydra sweep syntax -> Optuna distributions, and the per-trial overrides."""

from __future__ import annotations

import pytest
from hydra.core.override_parser.overrides_parser import OverridesParser
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from engine.tasks.sweeps import trial_overrides
from hydra_plugins.engine_optuna_sweeper._space import as_override, search_space


@pytest.mark.parametrize(("sweep", "expected"), [
    ("range(2, 9)", IntDistribution(2, 8)),  # Hydra's range excludes its stop
    ("range(2, 10, 3)", IntDistribution(2, 8, step=3)),
    ("range(0.1, 0.45, 0.1)", FloatDistribution(0.1, 0.4, step=0.1)),
    ("interval(1, 5)", FloatDistribution(1.0, 5.0)),  # Hydra's interval is a float range
    ("int(interval(1, 5))", IntDistribution(1, 5)),
    ("interval(0.0, 0.3)", FloatDistribution(0.0, 0.3)),
    ("tag(log, interval(0.0001, 0.003))", FloatDistribution(0.0001, 0.003, log=True)),
    ("choice(16, 32, 64)", CategoricalDistribution([16, 32, 64])),
    ("relu,'leaky relu'", CategoricalDistribution(["relu", "'leaky relu'"])),
])
def test_hydra_sweeps_become_optuna_distributions(sweep: str, expected: object) -> None:
    space, fixed = search_space({"model.params.x": sweep}, [])
    got = space["model.params.x"]
    assert type(got) is type(expected) and fixed == []
    if isinstance(expected, CategoricalDistribution):
        assert got == expected
    else:  # float steps: the last value below the stop carries rounding
        assert got._asdict() == pytest.approx(expected._asdict())


def test_command_line_replaces_or_fixes_configured_keys() -> None:
    params = {"a": "range(1, 4)", "b": "choice(1, 2)", "c": "7"}
    space, fixed = search_space(params, ["+experiment=xgb_1m", "a=interval(0.5, 1.5)", "b=2", "smoke=true"])
    assert set(space) == {"a"} and isinstance(space["a"], FloatDistribution)
    assert fixed == ["c=7", "+experiment=xgb_1m", "b=2", "smoke=true"]


def test_sampled_values_and_trial_identity_read_back_as_the_same_overrides(tmp_path) -> None:
    journal = tmp_path / "it's here" / "optuna.journal"
    lines = [as_override("x", 1e-05), as_override("y", 3), as_override("z", "'leaky relu'"),
             *trial_overrides("study-1", 7, "abc123", journal)]
    parsed = {o.key_or_group: o.value() for o in OverridesParser.create().parse_overrides(lines)}
    assert parsed == {"x": 1e-05, "y": 3, "z": "leaky relu", "sweep.study": "study-1", "sweep.trial": 7,
                      "sweep.parent_run_id": "abc123", "sweep.journal": str(journal)}
