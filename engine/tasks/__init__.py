"""Tasks: each module exposes ``run(cfg) -> dict[str, float]`` and is picked by ``task=<name>``.

Tasks are the composition root's other half: they read the composed config, build components with
``engine.config.build.build`` and call them with plain typed arguments.
"""
