"""One exception tree: the picture in engine/errors.py's docstring is the real class hierarchy, and no
module under engine/ grows an error class outside it."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from engine import errors

ENGINE = Path(errors.__file__).resolve().parent
_LINE = re.compile(r"^(?P<prefix>[│ ]*)(?:[├└]── )?(?P<name>\w+)(?: \((?P<note>[^)]*)\))?$")


def _drawn_tree() -> dict[str, tuple[set[str], set[str]]]:
    """name -> (engine parents, other bases) as drawn in the docstring's tree block."""
    block = errors.__doc__.split("::\n", 1)[1].lstrip("\n").split("\n\n", 1)[0]
    drawn: dict[str, tuple[set[str], set[str]]] = {}
    stack: list[str] = []
    for raw in block.splitlines():
        line = raw[4:]  # the literal block's indent
        match = _LINE.match(line)
        assert match, f"cannot read tree line {raw!r}"
        depth = len(match["prefix"]) // 4 + (1 if "──" in line else 0)
        stack[depth:] = [match["name"]]
        parents = {stack[depth - 1]} if depth else set()
        others: set[str] = set()
        for part in filter(None, (match["note"] or "").split(",")):
            part = part.strip()
            if part.startswith("also a "):
                parents.add(part.removeprefix("also a "))
            else:
                others.add(part)
        drawn[match["name"]] = (parents, others)
    return drawn


def _defined() -> dict[str, type[BaseException]]:
    return {name: obj for name, obj in vars(errors).items()
            if isinstance(obj, type) and issubclass(obj, BaseException) and obj.__module__ == errors.__name__}


def test_the_documented_tree_is_the_class_hierarchy() -> None:
    drawn, defined = _drawn_tree(), _defined()
    assert set(drawn) == set(defined)
    for name, cls in defined.items():
        engine_parents = {b.__name__ for b in cls.__bases__ if b.__module__ == errors.__name__}
        other_bases = {b.__name__ for b in cls.__bases__ if b.__module__ != errors.__name__} - {"Exception"}
        assert (engine_parents, other_bases) == drawn[name], name
        assert name == "EngineError" or issubclass(cls, errors.EngineError)


def test_no_error_class_outside_the_tree() -> None:
    """An ``...Error`` class anywhere under engine/ derives from a class of engine.errors (private
    control-flow exceptions, named with a leading underscore, never leave their module)."""
    offenders = []
    for path in sorted(ENGINE.rglob("*.py")):
        if path.name == "errors.py" and path.parent == ENGINE:
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        from_errors = {"errors"}  # `from engine import errors` -> errors.X
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module == "engine.errors":
                from_errors.update(alias.asname or alias.name for alias in node.names)
        for node in ast.walk(tree):
            if not isinstance(node, ast.ClassDef) or node.name.startswith("_"):
                continue
            if not node.name.endswith(("Error", "Exception")):
                continue
            bases = {b.id if isinstance(b, ast.Name) else getattr(b.value, "id", "") for b in node.bases
                     if isinstance(b, ast.Name | ast.Attribute)}
            if not bases & from_errors:
                offenders.append(f"{path.relative_to(ENGINE.parent)}:{node.lineno}: {node.name}")
    assert not offenders, "derive these from engine.errors:\n" + "\n".join(offenders)


def test_secrets_errors_are_in_the_one_tree() -> None:
    import engine.secrets

    for name in ("SecretKeyError", "SecretsFileError", "SecretFormatError", "CorruptSecretsError",
                 "TamperedSecretsError", "SecretContentError", "WrongKeyError", "WrongKeyOrCorruptError",
                 "MissingSecretError", "SecretReferenceError"):
        cls = getattr(errors, name)
        assert issubclass(cls, errors.SecretError) and getattr(engine.secrets, name) is cls
