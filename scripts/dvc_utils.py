"""Data and model versioning from the shell: a thin CLI over ``engine.tracking.dvc.DVCManager``.

    python scripts/dvc_utils.py init                     # make the project a DVC repository (idempotent)
    python scripts/dvc_utils.py add --path data/my.csv   # version a file or folder
    python scripts/dvc_utils.py status | push | pull | repro [STAGE] | diff [A [B]] | gc --workspace
    python scripts/dvc_utils.py remote add NAME URL [--default] [--local] | remote list | remote default NAME
    python scripts/dvc_utils.py params [OVERRIDES]       # write params.yaml from conf/ (+ Hydra overrides)
    python scripts/dvc_utils.py stage NAME               # what a dvc.yaml stage runs: python -m engine task=...

Exit codes: 0 ok, 1 the dvc command failed (its message on stderr), 2 usage (bad arguments, a path that
does not exist or lies outside the repository), 3 DVC cannot run here (no dvc executable, not a git/DVC
repository; the message says what to run). ``stage`` exits with the engine's own code.
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from engine.errors import DVCCommandError, DVCUnavailableError, OperationalError
from engine.tracking import dvc_params
from engine.tracking.dvc import DVCManager, DVCResult, find_dvc_root, mask

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_UNAVAILABLE = 0, 1, 2, 3


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dvc_utils.py", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="exit codes: 0 ok, 1 dvc failed, 2 usage, 3 no dvc / not a repository")
    parser.add_argument("--repo", type=Path, default=None,
                        help="repository root (default: the DVC repository above the current folder, else it)")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds before a command is killed")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    sub.add_parser("init", help="dvc init (nothing to do when .dvc exists)").add_argument(
        "--no-scm", action="store_true", help="without git")
    sub.add_parser("add", help="version a file or folder").add_argument("--path", required=True, type=Path)
    sub.add_parser("commit", help="record changed outputs").add_argument("--path", type=Path, default=None)
    for name, text in (("push", "upload to a remote"), ("pull", "download from a remote")):
        cmd = sub.add_parser(name, help=text)
        cmd.add_argument("--remote", "-r", default=None, help="remote name (default: the default remote)")
        cmd.add_argument("--path", dest="paths", action="append", type=Path, default=[], help="only these")
    status = sub.add_parser("status", help="what changed, as JSON ({} when up to date)")
    status.add_argument("--cloud", "-c", action="store_true", help="compare with the remote instead")
    status.add_argument("--remote", "-r", default=None)
    repro = sub.add_parser("repro", help="run the pipeline stages whose inputs changed")
    repro.add_argument("target", nargs="?", default=None, help="a stage (and what it needs)")
    repro.add_argument("--force", "-f", action="store_true", help="run even if nothing changed")
    repro.add_argument("--dry", action="store_true", help="only print the commands")
    diff = sub.add_parser("diff", help="tracked data changed between git revisions, as JSON")
    diff.add_argument("a_rev", nargs="?", default=None, help="default HEAD")
    diff.add_argument("b_rev", nargs="?", default=None, help="default the workspace")
    gc = sub.add_parser("gc", help="delete cached data no chosen revision uses (at least one scope flag)")
    for flag in ("--workspace", "--all-commits", "--all-branches", "--all-tags"):
        gc.add_argument(flag, action="store_true")
    gc.add_argument("--cloud", "-c", action="store_true", help="delete from the remote too")
    gc.add_argument("--remote", "-r", default=None)

    params = sub.add_parser("params", help="write params.yaml from the Hydra composition of conf/")
    params.add_argument("overrides", nargs="*", help="Hydra overrides for every stage, e.g. model=lstm")
    stage = sub.add_parser("stage", help="run a dvc.yaml stage's engine task with params.yaml's values")
    stage.add_argument("name", help="prepare, clean, features, train or evaluate")
    stage.add_argument("extra", nargs="*", help="more Hydra overrides, after params.yaml's (e.g. smoke=true)")

    remote = sub.add_parser("remote", help="remotes: add | list | default").add_subparsers(
        dest="remote_command", required=True, metavar="ACTION")
    add = remote.add_parser("add", help="add a remote")
    add.add_argument("name")
    add.add_argument("url", help="a folder, s3://bucket/path, ssh://host/path, ...")
    add.add_argument("--default", "-d", action="store_true", help="make it the default remote")
    add.add_argument("--local", action="store_true", help="this machine only (.dvc/config.local, not in git)")
    add.add_argument("--force", "-f", action="store_true", help="replace a remote of that name")
    remote.add_parser("list", help="name and URL of each remote")
    default = remote.add_parser("default", help="set the default remote")
    default.add_argument("name")
    default.add_argument("--local", action="store_true")
    return parser


def _repo(arg: Path | None) -> Path:
    if arg is not None:
        return arg
    try:
        return find_dvc_root(Path.cwd())
    except DVCUnavailableError:
        return Path.cwd()  # `init`, or a clear "not a DVC repository" from the manager


def _dispatch(dvc: DVCManager, args: argparse.Namespace) -> DVCResult:
    command: str = args.command
    if command == "remote":
        actions: dict[str, Callable[[], DVCResult]] = {
            "add": lambda: dvc.remote_add(args.name, args.url, default=args.default, local=args.local,
                                          force=args.force),
            "list": dvc.remote_list,
            "default": lambda: dvc.remote_default(args.name, local=args.local),
        }
        return actions[args.remote_command]()
    if command == "gc" and not (args.workspace or args.all_commits or args.all_branches or args.all_tags):
        raise OperationalError("gc needs a scope: --workspace, --all-commits, --all-branches or --all-tags")
    commands: dict[str, Callable[[], DVCResult]] = {
        "init": lambda: dvc.init(no_scm=args.no_scm),
        "add": lambda: dvc.add(args.path),
        "commit": lambda: dvc.commit(args.path),
        "push": lambda: dvc.push(args.remote, args.paths),
        "pull": lambda: dvc.pull(args.remote, args.paths),
        "status": lambda: dvc.status(cloud=args.cloud, remote=args.remote),
        "repro": lambda: dvc.repro(args.target, force=args.force, dry=args.dry),
        "diff": lambda: dvc.diff(args.a_rev, args.b_rev),
        "gc": lambda: dvc.gc(workspace=args.workspace, all_commits=args.all_commits,
                             all_branches=args.all_branches, all_tags=args.all_tags, cloud=args.cloud,
                             remote=args.remote),
    }
    return commands[command]()


def _params(repo: Path, overrides: list[str]) -> int:
    path = dvc_params.write_params(repo, overrides)
    print(f"wrote {path}", file=sys.stderr)
    return EXIT_OK


def _stage(repo: Path, name: str, extra: list[str]) -> int:
    params = dvc_params.load_params(repo)
    overrides = dvc_params.stage_overrides(params, name, dvc_params.stage_keys(repo, name))
    # A short run name: the default (the joined overrides) would be every value of the stage.
    experiment = os.environ.get("DVC_EXP_NAME")
    run_name = f"dvc-{name}" + (f"-{experiment}" if experiment else "")
    cmd = [sys.executable, "-m", "engine", *overrides, f"tracking.run_name={run_name}", *extra]
    print(mask("+ " + " ".join(_shell_word(word) for word in ["python", *cmd[1:]])), file=sys.stderr, flush=True)
    return subprocess.run(cmd, cwd=repo, check=False).returncode


def _shell_word(word: str) -> str:
    """``word`` as a shell reads it back, double-quoted where Hydra's own quotes are inside (readable)."""
    if shlex.quote(word) == word:
        return word
    return f'"{word}"' if not set(word) & set('"$`\\!') else shlex.quote(word)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)  # exits 2 on bad usage, 0 on --help
    try:
        if args.command in ("params", "stage"):
            repo = (args.repo or Path.cwd()).resolve()
            return _params(repo, args.overrides) if args.command == "params" else _stage(repo, args.name,
                                                                                          args.extra)
        result = _dispatch(DVCManager(_repo(args.repo), timeout=args.timeout), args)
    except DVCUnavailableError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    except DVCCommandError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except OperationalError as exc:  # a bad path, a missing gc scope, a stale params.yaml: fix and rerun
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    sys.stdout.write(result.stdout)
    sys.stderr.write(result.stderr)
    if not result.ok:
        print(f"error: {result.summary()}", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
