"""Schemas of the ``model`` group: one option per family (conf/model/<type>.yaml).

Each family's ``params`` node is generated from its frozen settings in :mod:`engine.models.settings`, the
single source of names, defaults and bounds that ``MLPipeline`` checks too, so a misspelt hyperparameter
fails while Hydra composes and a range is written once. Validation also builds the settings, so their
cross-field rules (a transformer's ``d_model`` divisible by ``nhead``) refuse a config before any work.
``random_state`` and ``device`` are the pipeline's (from ``seed`` and the trainer), never config keys.
``model.type`` names the MLPipeline family; sequence families add ``seq_len``, the bars per input window.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from omegaconf import DictConfig

from engine.config.derive import schema_from
from engine.errors import ConfigError
from engine.fields import bounded, choice
from engine.models.settings import (
    PIPELINE_SET_PARAMS,
    Cnn1dParams,
    DnnParams,
    LstmParams,
    RandomForestParams,
    TransformerParams,
    XGBoostParams,
)


def _params_schema(settings: type) -> type:
    exclude = tuple(n for n in PIPELINE_SET_PARAMS if n in settings.__dataclass_fields__)
    return schema_from(settings, name=f"{settings.__name__}Config", exclude=exclude, build_check=True)


RandomForestParamsConfig = _params_schema(RandomForestParams)
XGBoostParamsConfig = _params_schema(XGBoostParams)
DnnParamsConfig = _params_schema(DnnParams)
LstmParamsConfig = _params_schema(LstmParams)
TransformerParamsConfig = _params_schema(TransformerParams)
Cnn1dParamsConfig = _params_schema(Cnn1dParams)


@dataclass
class RandomForestModelConfig:
    type: str = choice("random_forest", ("random_forest",))
    params: RandomForestParamsConfig = field(default_factory=RandomForestParamsConfig)


@dataclass
class XGBoostModelConfig:
    type: str = choice("xgboost", ("xgboost",))
    params: XGBoostParamsConfig = field(default_factory=XGBoostParamsConfig)


@dataclass
class DnnModelConfig:
    type: str = choice("dnn", ("dnn",))
    params: DnnParamsConfig = field(default_factory=DnnParamsConfig)


@dataclass
class LstmModelConfig:
    type: str = choice("lstm", ("lstm",))
    seq_len: int = bounded(32, ge=2)  # bars per input window
    params: LstmParamsConfig = field(default_factory=LstmParamsConfig)


@dataclass
class TransformerModelConfig:
    type: str = choice("transformer", ("transformer",))
    seq_len: int = bounded(32, ge=2)
    params: TransformerParamsConfig = field(default_factory=TransformerParamsConfig)

    @staticmethod
    def __validate__(node: DictConfig, path: str) -> None:
        if node.seq_len > node.params.max_len:
            raise ConfigError(f"{path}.seq_len", f"{node.seq_len} exceeds params.max_len={node.params.max_len}")


@dataclass
class Cnn1dModelConfig:
    type: str = choice("cnn1d", ("cnn1d",))
    seq_len: int = bounded(32, ge=2)
    params: Cnn1dParamsConfig = field(default_factory=Cnn1dParamsConfig)


SCHEMAS: dict[str, dict[str, type]] = {
    "model": {
        "random_forest": RandomForestModelConfig, "xgboost": XGBoostModelConfig, "dnn": DnnModelConfig,
        "lstm": LstmModelConfig, "transformer": TransformerModelConfig, "cnn1d": Cnn1dModelConfig,
    },
}
