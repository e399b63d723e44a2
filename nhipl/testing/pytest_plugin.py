"""pytest plugin: every test and invariant of every ``*_test.nhipl`` file is a pytest item.

Registered by the ``pytest11`` entry point ``nhipl``, so ``pytest`` in a folder of
policies just works, and ``--junitxml``, ``-k``, ``-x``, ``-q`` work as for any run.

Only files named ``*_test.nhipl`` are collected (never plain ``*.nhipl`` policy
files), and never under a path given by ``--nhipl-ignore`` or the ``nhipl_ignore``
ini option. ``--nhipl-no-collect`` (or ``-p no:nhipl``) turns collection off. A test
file that does not load is a collection error showing ``file:line:col: message``.
"""

from __future__ import annotations

import fnmatch
import os
from pathlib import Path

import pytest

_DONE = pytest.StashKey[set]()
_FILES = pytest.StashKey[dict]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("nhipl", "nhipl policy tests (*_test.nhipl)")
    group.addoption(
        "--nhipl-ignore",
        action="append",
        default=[],
        metavar="PATH",
        help="don't collect *_test.nhipl files at or under PATH (a glob is allowed); repeatable",
    )
    group.addoption("--nhipl-no-collect", action="store_true", help="don't collect *_test.nhipl files at all")
    group.addoption("--nhipl-no-invariants", action="store_true", help="don't collect invariants")
    group.addoption(
        "--nhipl-max-examples", type=int, default=None, metavar="N", help="requests tried per invariant (default 300)"
    )
    group.addoption("--nhipl-seed", type=int, default=0, metavar="N", help="seed of the invariant search (default 0)")
    group.addoption(
        "--nhipl-coverage", action="store_true", help="report the rules no policy test made determining"
    )
    parser.addini(
        "nhipl_ignore", type="linelist", default=[], help="paths or globs whose *_test.nhipl files are not collected"
    )


def pytest_configure(config: pytest.Config) -> None:
    config.stash[_DONE] = set()
    config.stash[_FILES] = {}


def _ignored(path: Path, config: pytest.Config) -> bool:
    """Whether ``path`` is at or under an ignored path, or matches an ignored glob.

    ``--nhipl-ignore`` values are relative to the folder pytest was started in,
    ``nhipl_ignore`` ini values to the ini file's folder; a glob is matched against
    the absolute path and against the path relative to that folder.
    """
    ini_dir = config.inipath.parent if config.inipath else config.rootpath
    entries = [(p, config.invocation_params.dir) for p in config.getoption("nhipl_ignore")]
    entries += [(p, ini_dir) for p in config.getini("nhipl_ignore")]
    for entry, base in entries:
        if any(c in entry for c in "*?["):
            if fnmatch.fnmatch(str(path), entry) or fnmatch.fnmatch(os.path.relpath(path, base), entry):
                return True
            continue
        target = Path(os.path.abspath(os.path.join(base, entry)))
        if path == target or target in path.parents:
            return True
    return False


def pytest_collect_file(file_path: Path, parent: pytest.Collector):
    config = parent.config
    if not file_path.name.endswith("_test.nhipl") or config.getoption("nhipl_no_collect"):
        return None
    if _ignored(file_path, config):
        return None
    return PolicyTestFile.from_parent(parent, path=file_path)


def _display(path: Path, config: pytest.Config) -> str:
    try:
        return os.path.relpath(path, config.invocation_params.dir)
    except ValueError:  # another drive on Windows
        return str(path)


class PolicyTestFile(pytest.File):
    """A ``*_test.nhipl`` file: loads its policies once, yields one item per test/invariant."""

    def collect(self):
        from ..errors import PolicyError
        from ..loader import load
        from ..testing.runner import FileResult, declaration_key

        try:
            self.policies = load(_display(self.path, self.config))
        except PolicyError as err:
            raise self.CollectError(err.render()) from None
        self.config.stash[_FILES][str(self.path)] = FileResult(str(self.path), self.policies)
        done = self.config.stash[_DONE]
        for module, case in self.policies.tests:
            key = declaration_key(module, case)
            if key not in done:
                done.add(key)
                yield PolicyTestItem.from_parent(self, name=case.name, module=module, case=case)
        if self.config.getoption("nhipl_no_invariants"):
            return
        for module, invariant in self.policies.invariants:
            key = declaration_key(module, invariant)
            if key not in done:
                done.add(key)
                yield InvariantItem.from_parent(
                    self, name=f"invariant: {invariant.name}", module=module, invariant=invariant
                )


class PolicyTestFailure(Exception):
    """A policy test or invariant failed; the report is its message."""


class _PolicyItem(pytest.Item):
    def __init__(self, *, module, node, **kwargs):
        super().__init__(**kwargs)
        self.module = module
        self.node = node
        # No fixtures, as on a Python test: some plugins read `item.funcargs` on every item
        # (pytest-lsp 1.0's runtest hook fails on an item without it).
        self.funcargs: dict = {}

    def repr_failure(self, excinfo, style=None):
        if isinstance(excinfo.value, PolicyTestFailure):
            return str(excinfo.value)
        return super().repr_failure(excinfo, style=style)

    def reportinfo(self):
        span = self.node.span
        where = Path(self.module.path) if self.module.path else self.path
        return where, (span.line - 1 if span else None), f"{self.kind} \"{self.node.name}\""

    def _location(self) -> str:
        span = self.node.span
        return f"{span.source}:{span.line}:{span.column}" if span else self.module.source


class PolicyTestItem(_PolicyItem):
    kind = "test"

    def __init__(self, *, case, **kwargs):
        super().__init__(node=case, **kwargs)
        self.case = case

    def runtest(self) -> None:
        from ..testing.runner import run_case

        result = run_case(self.parent.policies, self.module, self.case)
        self.config.stash[_FILES][str(self.parent.path)].cases.append(result)
        if not result.passed:
            raise PolicyTestFailure(f"{self._location()}: test \"{self.case.name}\" failed\n{result.explain()}")


class InvariantItem(_PolicyItem):
    kind = "invariant"

    def __init__(self, *, invariant, **kwargs):
        super().__init__(node=invariant, **kwargs)
        self.invariant = invariant

    def runtest(self) -> None:
        from ..testing.invariants import DEFAULT_MAX_EXAMPLES, check_invariant
        from ..testing.runner import explain_invariant

        max_examples = self.config.getoption("nhipl_max_examples") or DEFAULT_MAX_EXAMPLES
        result = check_invariant(
            self.parent.policies,
            self.invariant,
            source=self.module.source,
            max_examples=max_examples,
            seed=self.config.getoption("nhipl_seed"),
        )
        if not result.holds:
            raise PolicyTestFailure(
                f"{self._location()}: invariant \"{self.invariant.name}\" failed\n{explain_invariant(result)}"
            )


def pytest_terminal_summary(terminalreporter, exitstatus, config: pytest.Config) -> None:
    if not config.getoption("nhipl_coverage"):
        return
    from ..testing.coverage import coverage
    from ..testing.runner import RunResult

    files = list(config.stash[_FILES].values())
    terminalreporter.section("nhipl rule coverage")
    terminalreporter.write_line(coverage(RunResult(files)).report())
