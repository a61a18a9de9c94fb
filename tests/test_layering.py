"""The house's shape: the dependency direction of DESIGN §2 (import-linter contracts in pyproject.toml)
and small modules (no module under engine/ over 400 lines, no class over 250)."""

from __future__ import annotations

import ast
import subprocess
import sys
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ENGINE = REPO / "engine"
MAX_MODULE_LINES = 400
MAX_CLASS_LINES = 250


def test_import_contracts_hold() -> None:
    lint_imports = Path(sys.executable).parent / "lint-imports"
    proc = subprocess.run([str(lint_imports), "--no-cache"], cwd=REPO, capture_output=True, text=True,
                          timeout=300)
    banner_end = proc.stdout.find("Contracts")  # skip the logo; a config error has no "Contracts" part
    report = (proc.stdout[banner_end:] if banner_end >= 0 else proc.stdout) + proc.stderr
    assert proc.returncode == 0, report
    contracts = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
    assert f"{len(contracts)} kept, 0 broken" in proc.stdout


def _size_offenders(root: Path) -> list[str]:
    offenders = []
    for path in sorted(root.rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        rel = path.relative_to(root.parent)
        lines = len(text.splitlines())
        if lines > MAX_MODULE_LINES:
            offenders.append(f"{rel}: {lines} lines (max {MAX_MODULE_LINES})")
        for node in ast.walk(ast.parse(text, filename=str(rel))):
            if isinstance(node, ast.ClassDef):
                size = node.end_lineno - node.lineno + 1
                if size > MAX_CLASS_LINES:
                    offenders.append(f"{rel}:{node.lineno}: class {node.name} is {size} lines "
                                     f"(max {MAX_CLASS_LINES})")
    return offenders


def test_no_module_over_400_lines_and_no_class_over_250() -> None:
    offenders = _size_offenders(ENGINE)
    assert not offenders, "split these:\n" + "\n".join(offenders)


def test_size_check_finds_a_long_module_and_a_long_nested_class(tmp_path: Path) -> None:
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "ok.py").write_text("x = 1\n" * MAX_MODULE_LINES)
    (pkg / "sub" / "long.py").write_text("x = 1\n" * (MAX_MODULE_LINES + 1))
    body = "\n".join(f"        x{i} = {i}" for i in range(MAX_CLASS_LINES - 1))
    (pkg / "nested.py").write_text(f"def f():\n    class Fits:\n{body}\n    class Big:\n{body}\n        y = 0\n")
    assert _size_offenders(pkg) == [
        "pkg/nested.py: 502 lines (max 400)",
        "pkg/nested.py:252: class Big is 251 lines (max 250)",  # Fits, 250 lines, passes
        "pkg/sub/long.py: 401 lines (max 400)",
    ]


def _helpers_exempted_from_task_independence() -> list[str]:
    contracts = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
    (independence,) = [c for c in contracts if c["id"] == "tasks-independent"]
    return [rule.split("->")[1].strip() for rule in independence["ignore_imports"]]


def _defines_run(path: Path) -> bool:
    return "run" in {n.name for n in ast.parse(path.read_text()).body if isinstance(n, ast.FunctionDef)}


def test_modules_exempted_from_task_independence_are_helpers_not_tasks() -> None:
    """The independence contract lets tasks import a few helper modules; a helper that grew a
    ``run(cfg)`` would be a task hiding behind the exemption."""
    helpers = _helpers_exempted_from_task_independence()
    assert helpers and all(h.startswith("engine.tasks.") for h in helpers)
    for helper in helpers:
        path = ENGINE / "tasks" / (helper.rsplit(".", 1)[1] + ".py")
        if not path.exists():
            continue
        assert not _defines_run(path), f"{helper} defines run(): it is a task, not a helper"


def test_every_non_task_module_of_tasks_is_a_listed_helper() -> None:
    """A module under engine/tasks without ``run(cfg)`` is wiring shared by tasks: it is listed as a helper,
    so importing it is not mistaken for one task importing another (and a new one is seen in review)."""
    helpers = set(_helpers_exempted_from_task_independence())
    wiring = {f"engine.tasks.{p.stem}" for p in (ENGINE / "tasks").glob("*.py")
              if p.stem != "__init__" and not _defines_run(p)}
    assert wiring - helpers == set(), "add to tasks-independent's ignore_imports in pyproject.toml"
