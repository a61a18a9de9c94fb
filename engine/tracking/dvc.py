"""DVCManager: data and model versioning through the real ``dvc`` command of this environment.

Why the command line and not ``dvc.repo.Repo``: the CLI is DVC's stable interface, and a child process
can be killed when a push hangs (the timeout) without leaving DVC's locks and logging set-up inside the
engine process. The ``dvc`` next to the running interpreter (the venv's) is preferred over the one on PATH.

Contract: a command that runs and fails is a value, not an exception: every method returns a
:class:`DVCResult` (``ok``, ``returncode``, ``stdout``, ``stderr``); ``result.check()`` turns a failure into a
:class:`DVCCommandError` where the caller needs success. What no command can fix is raised at once as
:class:`DVCUnavailableError`, with the command to run: no ``dvc`` executable, a folder that is neither a
git nor a DVC repository. Credentials in remote URLs (``scheme://user:pass@host``) and secrets the
process knows (``engine.redact``) are masked in everything this module logs or returns.
"""

from __future__ import annotations

import configparser
import json
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.errors import DVCCommandError, DVCTrackError, DVCUnavailableError, OperationalError
from engine.redact import redact_text

log = logging.getLogger(__name__)

INIT_HINT = "run `python scripts/dvc_utils.py init` (or `git init && dvc init`) in the project root"
_USERINFO = re.compile(r"(\b[a-z][a-z0-9+.-]*://)[^/@\s]+@", re.IGNORECASE)


def mask(text: str) -> str:
    """``text`` with URL credentials and known secrets replaced by ``***``."""
    return redact_text(_USERINFO.sub(r"\1***@", text))


def dvc_executable() -> str:
    """The ``dvc`` next to ``sys.executable`` (the venv's), else the one on PATH."""
    found = shutil.which("dvc", path=str(Path(sys.executable).parent)) or shutil.which("dvc")
    if found is None:
        raise DVCUnavailableError(f"no `dvc` executable next to {sys.executable} or on PATH: install it with "
                                  "`pip install 'dvc>=3.50'` (bash scripts/install.sh does)")
    return found


def find_dvc_root(start: str | Path) -> Path:
    """The nearest directory at or above ``start`` (which need not exist yet) that holds a ``.dvc`` folder."""
    here = Path(start).resolve()
    for candidate in [here, *here.parents]:
        if (candidate / ".dvc").is_dir():
            return candidate
    raise DVCUnavailableError(f"no DVC repository at or above {start}: {INIT_HINT}")


def in_git_repo(path: Path) -> bool:
    # `.git` is a folder in a clone and a file in a worktree or submodule; either marks a git work tree.
    return any((candidate / ".git").exists() for candidate in [path, *path.parents])


def uses_git(root: Path) -> bool:
    """Whether the DVC repository at ``root`` is tied to git (``dvc init`` rather than ``--no-scm``)."""
    parser = configparser.ConfigParser()
    try:
        parser.read(root / ".dvc" / "config", encoding="utf-8")
    except configparser.Error:
        return in_git_repo(root)
    no_scm = parser.get("core", "no_scm", fallback="false").strip().lower() in ("true", "1", "yes")
    return not no_scm and in_git_repo(root)


@dataclass(frozen=True)
class DVCResult:
    """What one ``dvc`` command did. ``returncode`` is None when it was killed after the timeout."""

    command: str
    returncode: int | None
    stdout: str
    stderr: str
    dvc_file: Path | None = None  # add(): the ``.dvc`` pointer file written for the path

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    def summary(self) -> str:
        """One line: the command and, on failure, DVC's last message."""
        if self.ok:
            return f"`{self.command}` ok"
        lines = [line.strip() for line in (self.stderr or self.stdout).splitlines() if line.strip()]
        # DVC's reason starts at its last "ERROR:" line and may continue with a hint on the next lines.
        start = max((i for i, line in enumerate(lines) if line.startswith("ERROR")), default=len(lines) - 1)
        reason = " ".join(lines[start:])[:400] if lines else "no output"
        code = "timed out" if self.returncode is None else f"exit {self.returncode}"
        return f"`{self.command}` failed ({code}): {reason}"

    def check(self) -> DVCResult:
        """This result if the command succeeded, else :class:`DVCCommandError` with :meth:`summary`."""
        if not self.ok:
            raise DVCCommandError(self.summary())
        return self

    def json(self) -> Any:
        """``stdout`` parsed as JSON (the ``--json`` commands); an empty output is ``{}``."""
        return json.loads(self.stdout) if self.stdout.strip() else {}


def _execute(cmd: list[str], cwd: Path, timeout: float) -> tuple[int | None, str, str]:
    # DVC's env: the venv's bin first on PATH so the pipeline's `python -m engine ...` stages run under the
    # same interpreter, and no analytics call (runs must work offline and send nothing about the repo).
    env = {**os.environ, "DVC_NO_ANALYTICS": "1"}
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    posix = os.name == "posix"
    # A session of its own so a timeout kills the stage commands `dvc repro` started, not only dvc itself.
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=posix)
    try:
        out, err = proc.communicate(timeout=timeout)
        return proc.returncode, out, err
    except subprocess.TimeoutExpired:
        _kill(proc, posix)
        out, err = proc.communicate()
        return None, out, f"{err}\nERROR: did not finish within {timeout:.0f}s (killed)"
    except BaseException:
        _kill(proc, posix)  # Ctrl-C no longer reaches the child's own session; take it down with us
        raise


def _kill(proc: subprocess.Popen[str], posix: bool) -> None:
    try:
        if posix:
            os.killpg(proc.pid, signal.SIGKILL)
        else:
            proc.kill()
    except ProcessLookupError:
        pass


class DVCManager:
    """The DVC commands engine uses, run in ``repo`` (a git repository with, after ``init``, a ``.dvc``)."""

    def __init__(self, repo: str | Path = ".", timeout: float = 300.0) -> None:
        self.root = Path(repo).resolve()
        self.timeout = timeout
        if not self.root.is_dir():
            raise DVCUnavailableError(f"{self.root} is not a directory: create it, then {INIT_HINT}")
        if not self.initialized and not in_git_repo(self.root):
            raise DVCUnavailableError(f"{self.root} is not a DVC repository (no .dvc folder) nor inside a git "
                                      f"repository: {INIT_HINT}")
        self.executable = dvc_executable()

    @property
    def initialized(self) -> bool:
        return (self.root / ".dvc").is_dir()

    # -- plumbing ---------------------------------------------------------------------------------
    def run(self, *args: str, timeout: float | None = None) -> DVCResult:
        """Any ``dvc`` command in the repository, as a result value."""
        command = mask(" ".join(["dvc", *args]))
        log.debug("running %s in %s", command, self.root)
        code, out, err = _execute([self.executable, *args], self.root, timeout or self.timeout)
        result = DVCResult(command, code, mask(out), mask(err))
        if not result.ok:
            log.info("%s", result.summary())  # a value for the caller to judge, not an alarm of ours
        return result

    def _require_repo(self) -> None:
        if not self.initialized:
            raise DVCUnavailableError(f"{self.root} is not a DVC repository (no .dvc folder): {INIT_HINT}")

    def _rel(self, path: str | Path) -> str:
        """``path`` as DVC wants it: relative to the repository (a relative ``path`` already is)."""
        target = Path(path)
        if not target.is_absolute():
            return str(target)
        try:
            return str(target.resolve().relative_to(self.root))
        except ValueError as exc:
            raise OperationalError(f"{target} is outside the DVC repository {self.root}") from exc

    def _dvc(self, *args: str, timeout: float | None = None) -> DVCResult:
        self._require_repo()
        return self.run(*args, timeout=timeout)

    # -- commands ---------------------------------------------------------------------------------
    def init(self, no_scm: bool = False) -> DVCResult:
        """``dvc init``; a repository that already has ``.dvc`` is left as it is (an ok result says so)."""
        if self.initialized:
            return DVCResult("dvc init", 0, f"{self.root} is already a DVC repository\n", "")
        if not no_scm and not in_git_repo(self.root):
            raise DVCUnavailableError(f"{self.root} is not inside a git repository: run `git init` first "
                                      "(or init with no_scm=True to use DVC without git)")
        return self.run("init", "--quiet", *(["--no-scm"] if no_scm else []))

    def add(self, path: str | Path) -> DVCResult:
        """``dvc add`` a file or folder inside the repository; ``dvc_file`` is the pointer file written."""
        self._require_repo()  # the more basic problem first
        target = (self.root / path) if not Path(path).is_absolute() else Path(path)
        rel = self._rel(target.resolve())
        if not target.exists():
            raise OperationalError(f"cannot dvc-add {target}: it does not exist")
        result = self._dvc("add", rel)
        return DVCResult(result.command, result.returncode, result.stdout, result.stderr,
                         dvc_file=self._pointer(Path(rel)) if result.ok else None)

    def _pointer(self, rel: Path) -> Path | None:
        """The ``.dvc`` file that records ``rel``: its own, or that of a tracked folder above it (DVC 3 adds
        a file inside a tracked folder to the folder's entry)."""
        for candidate in [rel, *rel.parents[:-1]]:
            pointer = self.root / f"{candidate}.dvc"
            if pointer.is_file():
                return pointer
        return None

    def commit(self, path: str | Path | None = None) -> DVCResult:
        """Record the current contents of tracked outputs (all, or ``path``'s) in their ``.dvc``/``dvc.lock``."""
        return self._dvc("commit", "--force", *([self._rel(path)] if path is not None else []))

    def push(self, remote: str | None = None, targets: Sequence[str | Path] = ()) -> DVCResult:
        return self._dvc("push", *self._remote(remote), *(self._rel(t) for t in targets))

    def pull(self, remote: str | None = None, targets: Sequence[str | Path] = ()) -> DVCResult:
        return self._dvc("pull", *self._remote(remote), *(self._rel(t) for t in targets))

    def repro(self, target: str | None = None, force: bool = False, dry: bool = False,
              timeout: float | None = None) -> DVCResult:
        """``dvc repro`` (the whole pipeline, or ``target`` and what it needs); training may need a longer
        ``timeout`` than the manager's default."""
        flags = [*(["--force"] if force else []), *(["--dry"] if dry else [])]
        return self._dvc("repro", *flags, *([target] if target else []), timeout=timeout)

    def status(self, cloud: bool = False, remote: str | None = None) -> DVCResult:
        """``dvc status --json``: ``result.json()`` is ``{}`` when the workspace (or remote) is up to date."""
        return self._dvc("status", "--json", *(["--cloud"] if cloud else []), *self._remote(remote))

    def diff(self, a_rev: str | None = None, b_rev: str | None = None) -> DVCResult:
        """``dvc diff --json`` between two git revisions (default HEAD and the workspace)."""
        revs = [a_rev or "HEAD", b_rev] if b_rev else ([a_rev] if a_rev else [])
        return self._dvc("diff", "--json", *revs)

    def gc(self, workspace: bool = True, all_commits: bool = False, all_branches: bool = False,
           all_tags: bool = False, cloud: bool = False, remote: str | None = None) -> DVCResult:
        """``dvc gc``: delete cached data that none of the chosen revisions uses (from the remote too with
        ``cloud``). Calling it is the confirmation: DVC's prompt is answered with ``--force``."""
        scope = [flag for flag, on in (("--workspace", workspace), ("--all-commits", all_commits),
                                       ("--all-branches", all_branches), ("--all-tags", all_tags)) if on]
        if not scope:
            raise OperationalError("dvc gc needs a scope: workspace, all_commits, all_branches or all_tags")
        return self._dvc("gc", "--force", *scope, *(["--cloud"] if cloud else []), *self._remote(remote))

    # -- remotes ----------------------------------------------------------------------------------
    def remote_add(self, name: str, url: str, default: bool = False, local: bool = False,
                   force: bool = False) -> DVCResult:
        """Add a remote to ``.dvc/config`` (committed), or with ``local`` to ``.dvc/config.local`` (this
        machine only: the place for paths and credentials that must not reach git)."""
        flags = [*(["--default"] if default else []), *(["--local"] if local else []),
                 *(["--force"] if force else [])]
        return self._dvc("remote", "add", *flags, name, url)

    def remote_list(self) -> DVCResult:
        """``dvc remote list``: one ``name<TAB>url`` line a remote (use :meth:`remotes` for a dict)."""
        return self._dvc("remote", "list")

    def remote_default(self, name: str, local: bool = False) -> DVCResult:
        return self._dvc("remote", "default", *(["--local"] if local else []), name)

    def remotes(self) -> dict[str, str]:
        """Remote name -> URL (credentials masked), from every config level."""
        found: dict[str, str] = {}
        for line in self.remote_list().check().stdout.splitlines():
            parts = line.split()
            if len(parts) >= 2:
                found[parts[0]] = parts[1]
        return found

    def default_remote(self) -> str | None:
        """The default remote's name, or None when none is set (``dvc push`` would then fail)."""
        result = self._dvc("remote", "default")
        name = result.stdout.strip()
        return name if result.ok and name else None

    @staticmethod
    def _remote(remote: str | None) -> list[str]:
        return ["--remote", remote] if remote else []


# -- before a run: will `dvc add` of this output work? -------------------------------------------
def check_trackable(path: str | Path, repo: str | Path | None = None) -> None:
    """Raise, in one line that says what to fix, when ``dvc add path`` could not work: no ``dvc``, no DVC
    repository at or above ``path``, git ignoring the ``.dvc`` file DVC would write, ``.dvcignore`` hiding
    the path, or an overlap with an output DVC already tracks. ``path`` need not exist yet: the point is to
    call this before a long run (``task.dvc_track=true``), not to learn it after the model is saved."""
    target = Path(path).resolve()
    root = Path(repo).resolve() if repo is not None else find_dvc_root(target)
    if not (root / ".dvc").is_dir():
        raise DVCUnavailableError(f"{root} is not a DVC repository (no .dvc folder): {INIT_HINT}")
    dvc = dvc_executable()
    try:
        rel = target.relative_to(root)
    except ValueError:
        raise DVCTrackError(f"{target} is outside the DVC repository {root}: save it inside the repository "
                            "(paths.models) or init DVC above it") from None
    _check_overlaps(root, rel)
    # Inside a folder tracked by its own `<folder>.dvc`, DVC 3 records the file in that folder's entry:
    # no pointer of its own is written, so only a pointer of its own could be git-ignored.
    in_tracked_folder = any((root / f"{folder}.dvc").is_file() for folder in rel.parents[:-1])
    if uses_git(root) and not in_tracked_folder:
        _check_git_ignore(root, rel)
    _check_dvcignore(dvc, root, rel)


def _check_overlaps(root: Path, rel: Path) -> None:
    for stage, out in _stage_outputs(root):
        if rel == out or out in rel.parents or rel in out.parents:
            raise DVCTrackError(f"{rel} overlaps {out}, an output of stage '{stage}' in dvc.yaml: `dvc repro` "
                                "versions it; do not add it separately (task.dvc_track=false)")


def _stage_outputs(root: Path) -> list[tuple[str, Path]]:
    """(stage, path) of every literal output in ``dvc.yaml``; templated paths (``${...}``) are skipped."""
    import yaml  # only here: the rest of the module needs no YAML

    try:
        spec = yaml.safe_load((root / "dvc.yaml").read_text(encoding="utf-8")) or {}
    except FileNotFoundError:
        return []
    except (OSError, yaml.YAMLError) as exc:
        raise DVCTrackError(f"cannot read {root / 'dvc.yaml'}: {exc}") from exc
    found: list[tuple[str, Path]] = []
    for name, stage in (spec.get("stages") or {}).items():
        for kind in ("outs", "metrics", "plots"):
            for entry in (stage.get(kind) or []) if isinstance(stage, dict) else []:
                out = next(iter(entry)) if isinstance(entry, dict) else entry
                if isinstance(out, str) and "${" not in out:
                    found.append((str(name), Path(os.path.normpath(out))))
    return found


def _check_git_ignore(root: Path, rel: Path) -> None:
    pointer = f"{rel}.dvc"

    def check_ignore(*flags: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["git", "check-ignore", *flags, "--", pointer], cwd=root, capture_output=True,
                              text=True, timeout=30, check=False, stdin=subprocess.DEVNULL)

    try:
        # --quiet decides: with --verbose git also exits 0 when the last match is a negation (`!x`).
        if check_ignore("--quiet").returncode == 0:
            rule = check_ignore("--verbose").stdout.split("\t", 1)[0].strip()
            raise DVCTrackError(f"{pointer} would be git-ignored (rule {rule}), so DVC refuses to add {rel}: "
                                "ignore the folder's contents but not its .dvc files (e.g. `/models/**`, "
                                "`!/models/**/`, `!/models/**/*.dvc` in .gitignore)")
    except (FileNotFoundError, subprocess.TimeoutExpired):
        return  # no usable git here: DVC reports the problem itself when it gets there


def _check_dvcignore(dvc: str, root: Path, rel: Path) -> None:
    done = subprocess.run([dvc, "check-ignore", "--details", "--", str(rel)], cwd=root, capture_output=True,
                          text=True, timeout=60, check=False, stdin=subprocess.DEVNULL,
                          env={**os.environ, "DVC_NO_ANALYTICS": "1"})
    if done.returncode == 0:
        rule = done.stdout.split("\t", 1)[0].strip()
        raise DVCTrackError(f"{rel} is hidden from DVC by .dvcignore (rule {rule}): remove that pattern")
