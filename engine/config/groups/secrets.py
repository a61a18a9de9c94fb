"""Config group ``secrets`` and the ``${secret:name}`` resolver.

YAML never holds a secret: a value is written ``${secret:db_password}`` and resolved only when the
component that needs it is built, by decrypting the configured file (``secrets.path``) with the key in
the environment variable ``secrets.key_env``. Nothing is resolved while composing or validating, and
nothing is cached: every resolution reads the file afresh in the process that needs it. Each value
handed out is registered with ``engine.redact`` and the process's logging and standard
streams are put behind redaction, so the value is masked wherever it would be printed or tracked.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import InterpolationResolutionError

from engine import errors
from engine.errors import ConfigError, SecretError

RESOLVER = "secret"
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass
class SecretsConfig:
    # ENGINE_SECRETS_FILE lets a deployment point at a mounted file without a config change.
    path: str = "${oc.env:ENGINE_SECRETS_FILE,${paths.root}/secrets.enc}"
    # The NAME of the environment variable that holds the key, never the key itself.
    key_env: str = "CONFIG_AES_KEY"

    @staticmethod
    def __validate__(node: DictConfig, path: str) -> None:
        key_env = node.get("key_env")
        if not isinstance(key_env, str) or not _ENV_NAME.match(key_env):
            # The value is not echoed: someone may have pasted the key where its variable's name belongs.
            raise ConfigError(f"{path}.key_env" if path else "key_env",
                              "must be the name of an environment variable (letters, digits, underscore), "
                              "e.g. CONFIG_AES_KEY; the key itself never goes in config")


SCHEMAS: dict[str, dict[str, type]] = {"secrets": {"file": SecretsConfig}}


class SecretReferenceError(errors.SecretReferenceError, InterpolationResolutionError):
    """:class:`engine.errors.SecretReferenceError` as OmegaConf sees it: being an
    InterpolationResolutionError, OmegaConf passes it on instead of wrapping it, so the CLI reports it as an
    engine error in one line."""


def _in_hydra_node(parent: Any) -> bool:
    try:
        where = str(parent._get_full_key(None))
    except Exception:  # a detached node has no path; it is not Hydra's
        return False
    return where == "hydra" or where.startswith("hydra.")


def resolve_secret(name: Any, *, _parent_: Any, _root_: DictConfig) -> Any:
    """The ``secret`` resolver: ``name`` from the file configured under the root's ``secrets`` node."""
    from engine.redact import protect_process, remember_all
    from engine.secrets import SecureConfig

    name = str(name) if name is not None else ""
    if _in_hydra_node(_parent_):
        # Hydra's own node records the command line (hydra.overrides.task, job.override_dirname), which
        # code reads for run names and folders: there a reference stays the text that was typed.
        return f"${{{RESOLVER}:{name}}}"
    failure: SecretError | None = None
    node = _root_.get("secrets") if isinstance(_root_, DictConfig) and "secrets" in _root_ else None
    if not name:
        failure = SecretReferenceError("${secret:} needs a secret name, e.g. ${secret:db_password}")
    elif node is None:
        failure = SecretReferenceError(f"${{secret:{name}}} is used but no secrets file is configured; add "
                                       "`- secrets: default` to the defaults of conf/config.yaml or pass "
                                       "secrets=default")
    else:
        try:
            store = SecureConfig(str(node.path), key_env=str(node.key_env))
            value = store.get(name)
        except SecretError as exc:
            failure = SecretReferenceError(f"${{secret:{name}}}: {exc}")
    if failure is not None:
        raise failure  # raised outside the except block: nothing decrypted rides along as __context__
    remember_all(value)
    protect_process()
    return value


def register_resolvers() -> None:
    """Register ``${secret:name}`` (uncached, so no decrypted value is kept by OmegaConf). Idempotent."""
    if not OmegaConf.has_resolver(RESOLVER):
        OmegaConf.register_new_resolver(RESOLVER, resolve_secret, use_cache=False)
