"""One schema per concept: each family's frozen settings are the single source of its hyperparameter
names, defaults and bounds (the estimators' and networks' signatures, the config schemas); the facade
itself holds no branch on the model type."""

from __future__ import annotations

import ast
import dataclasses
import inspect
from pathlib import Path

import pytest

from engine.errors import ConfigError
from engine.models import MODEL_TYPES
from engine.models.pipeline import MLPipeline
from engine.models.settings import PARAMS, PIPELINE_SET_PARAMS, TrainerSettings, family_params


def _signature_defaults(cls: type) -> dict[str, object]:
    skip = {"self", "n_features", "output_dim"}
    return {n: p.default for n, p in inspect.signature(cls.__init__).parameters.items() if n not in skip}


@pytest.mark.parametrize("model_type", MODEL_TYPES)
def test_settings_match_the_family_constructor(model_type):
    if model_type in ("random_forest", "xgboost"):
        from engine.models.tabular import TABULAR as classes
    else:
        from engine.models.nets.registry import NETWORKS as classes
    defaults = {f.name: f.default for f in dataclasses.fields(PARAMS[model_type])}
    assert defaults == _signature_defaults(classes[model_type])


@pytest.mark.parametrize(("model_type", "params", "key"), [
    ("random_forest", {"n_estimators": 0}, "model.params.n_estimators"),
    ("xgboost", {"subsample": 1.5}, "model.params.subsample"),
    ("xgboost", {"tree_method": "gpu_hist"}, "model.params.tree_method"),
    ("dnn", {"hidden_dims": [8, 0]}, "model.params.hidden_dims"),
    ("transformer", {"d_model": 30, "nhead": 4}, "model.params.nhead"),
    ("lstm", {"hiden_dim": 8}, "model.params.hiden_dim"),
])
def test_out_of_range_or_unknown_params_fail_when_the_pipeline_is_built(model_type, params, key):
    with pytest.raises(ConfigError) as err:
        MLPipeline(model_type, params)
    assert err.value.key == key
    with pytest.raises(ConfigError):
        family_params(model_type, params)


def test_trainer_settings_are_bounded():
    for bad, key in (({"max_epochs": 0}, "trainer.max_epochs"), ({"learning_rate": 0.0}, "trainer.learning_rate"),
                     ({"precision": "8-bit"}, "trainer.precision"), ({"torch_threads": -1}, "trainer.torch_threads")):
        with pytest.raises(ConfigError) as err:
            TrainerSettings(**bad)
        assert err.value.key == key


def test_the_config_schemas_are_generated_from_the_settings():
    from engine.config.groups.model import SCHEMAS as MODEL_SCHEMAS
    from engine.config.groups.trainer import TrainerConfig

    for model_type, schema in MODEL_SCHEMAS["model"].items():
        params_schema = {f.name: f for f in dataclasses.fields(schema)}["params"].default_factory
        settings = PARAMS[model_type]
        expected = [f.name for f in dataclasses.fields(settings) if f.name not in PIPELINE_SET_PARAMS]
        assert [f.name for f in dataclasses.fields(params_schema)] == expected
        assert params_schema.__settings__ is settings
        for f in dataclasses.fields(params_schema):
            assert f.metadata == {g.name: g for g in dataclasses.fields(settings)}[f.name].metadata
    assert TrainerConfig.__settings__ is TrainerSettings
    assert TrainerConfig().max_epochs == TrainerSettings().max_epochs == 10


def test_the_facade_has_no_branch_on_the_model_type():
    source = Path(inspect.getfile(MLPipeline)).read_text()
    family_words = {"is_net", "is_sequence", "model_type", "NET_TYPES", "SEQUENCE_TYPES", "TABULAR_TYPES"}
    offenders = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.If | ast.IfExp):
            names = {n.id for n in ast.walk(node.test) if isinstance(n, ast.Name)}
            names |= {n.attr for n in ast.walk(node.test) if isinstance(n, ast.Attribute)}
            if names & family_words and "MODEL_TYPES" not in names and "manifest" not in ast.unparse(node.test):
                offenders.append(f"line {node.lineno}: {ast.unparse(node.test)}")
    assert not offenders, offenders
