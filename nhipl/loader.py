"""Loading: files, folders and imports → parse → lower → check → :class:`Policies`.

``import "name"`` (no slash, no ``.nhipl``) names a standard-library policy
shipped in ``nhipl.stdlib_policies``; anything else is a file path relative to
the importing file. Each file is loaded once, so import cycles are harmless.
Errors from every file are collected and raised together.
"""

from __future__ import annotations

import os
from importlib import resources

from . import ast as A
from .check import check
from . import source as user_files
from .errors import Diagnostic, LocatedError, PolicyError, Span, did_you_mean
from .lower import lower
from .parse import parse_chunks
from .policies import Policies, collector_paused

STDLIB_PACKAGE = "nhipl.stdlib_policies"


def _inside(path: str, folder: str) -> bool:
    folder = os.path.realpath(folder)
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def project_folder(path: str) -> str:
    """The folder a policy file given by the user may import from: the one above its own, so
    that ``tests/x_test.nhipl`` reaches ``policies/x.nhipl`` beside it."""
    return os.path.dirname(os.path.dirname(os.path.abspath(path))) or os.sep


def _refuse_import(target: str, path: str, base_dir: str, project: str) -> tuple[str, str] | None:
    """Why the file import of ``target`` (at ``path``) is refused, with help, or None.

    An import names a ``.nhipl`` file, so the content of any other file (an environment, a
    password file) never reaches an error message; and the file must lie, symlinks
    resolved, under the importing file's folder, the project folder (the folder above the
    one holding the file the user named) or the current folder, unless imports outside
    them are allowed."""
    if not target.endswith(".nhipl"):
        return (f"cannot import `{target}`: an import names a `.nhipl` file or a standard-library policy",
                "name the policy file with its `.nhipl` suffix")
    if user_files.imports_outside.get():
        return None
    real = os.path.realpath(path)
    if _inside(real, base_dir) or _inside(real, project) or _inside(real, os.getcwd()):
        return None
    return (f"cannot import `{target}`: it lies outside the importing file's project and the current folder",
            "run nhipl from a folder that holds both files, or pass `--allow-import-outside`")


def stdlib_names() -> list[str]:
    return sorted(
        p.name[: -len(".nhipl")]
        for p in resources.files(STDLIB_PACKAGE).iterdir()
        if p.name.endswith(".nhipl")
    )


def is_stdlib_name(target: str) -> bool:
    return "/" not in target and "\\" not in target and not target.endswith(".nhipl")


def read_text(path: str) -> str:
    """A policy file's text, or PolicyError naming the file."""
    try:
        return user_files.read_text(path)
    except LocatedError as err:
        raise PolicyError([err.diagnostic()]) from None


def decode(data: bytes, name: str) -> str:
    try:
        return user_files.decode(data, name)
    except LocatedError as err:
        raise PolicyError([err.diagnostic()]) from None


def _parse_and_lower(text: str, source: str, path: str | None) -> A.Module:
    """parse → lower, a group of items at a time for a large file (see
    :func:`~nhipl.parse.parse_chunks`), with the same errors as in one go."""
    items: list = []
    comments: list = []
    diagnostics: list[Diagnostic] = []
    for parsed in parse_chunks(text, source):
        try:
            part = lower(parsed, text, source, path)
        except PolicyError as err:
            diagnostics.extend(err.diagnostics)
            continue
        items.extend(part.items)
        comments.extend(part.comments)
    if diagnostics:
        raise PolicyError(diagnostics)
    return A.Module(source, tuple(items), tuple(comments), path, text)


class _Loader:
    def __init__(self) -> None:
        self.modules: list[A.Module] = []
        self.seen: set[str] = set()
        self.project = os.getcwd()  # set per file the user names: see project_folder
        self.lines: dict[str, list[str]] = {}
        self.diagnostics: list[Diagnostic] = []

    def load_text(self, text: str, source: str, path: str | None, base_dir: str) -> None:
        self.lines[source] = user_files.lines(text)
        try:
            module = _parse_and_lower(text, source, path)
        except PolicyError as err:
            self.diagnostics.extend(err.diagnostics)
            return
        for item in module.items:
            if isinstance(item, A.Import):
                self.load_import(item, base_dir)
        self.modules.append(module)

    def load_file(self, path: str, source: str | None = None) -> None:
        key = os.path.realpath(path)
        if key in self.seen:
            return
        self.seen.add(key)
        try:
            text = read_text(path)
        except PolicyError as err:
            self.diagnostics.extend(err.diagnostics)
            return
        self.load_text(text, source or path, path, os.path.dirname(path) or ".")

    def load_stdlib(self, name: str, span: Span | None) -> None:
        key = f"stdlib:{name}"
        if key in self.seen:
            return
        resource = resources.files(STDLIB_PACKAGE) / f"{name}.nhipl"
        if not resource.is_file():
            self.diagnostics.append(
                Diagnostic(
                    "import-not-found",
                    f"no standard-library policy named `{name}`",
                    span,
                    did_you_mean(name, stdlib_names()) or "available: " + ", ".join(stdlib_names()),
                    self._line(span),
                )
            )
            return
        self.seen.add(key)
        text = resource.read_text(encoding="utf-8")
        self.load_text(text, f"{name}.nhipl", None, ".")

    def load_import(self, item: A.Import, base_dir: str) -> None:
        target = item.target
        if is_stdlib_name(target):
            self.load_stdlib(target, item.span)
            return
        path = os.path.normpath(os.path.join(base_dir, target))
        refused = _refuse_import(target, path, base_dir, self.project)
        if refused is not None:
            message, help = refused
            self.diagnostics.append(Diagnostic("import-refused", message, item.span, help, self._line(item.span)))
            return
        if not os.path.isfile(path):
            near = None
            folder = os.path.dirname(path) or "."
            if os.path.isdir(folder):
                near = did_you_mean(os.path.basename(path), [f for f in os.listdir(folder) if f.endswith(".nhipl")])
            self.diagnostics.append(
                Diagnostic("import-not-found", f"cannot import `{target}`: no such file `{path}`", item.span, near, self._line(item.span))
            )
            return
        self.load_file(path)

    def _line(self, span: Span | None) -> str | None:
        if span is None:
            return None
        lines = self.lines.get(span.source) or []
        return lines[span.line - 1] if 0 < span.line <= len(lines) else None

    def finish(self) -> Policies:
        if not self.diagnostics:
            self.diagnostics.extend(check(self.modules, self.lines))
        if self.diagnostics:
            raise PolicyError(self.diagnostics)
        return Policies(self.modules)


def policy_files(folder: str) -> list[str]:
    """The ``*.nhipl`` files of a folder, except ``*_test.nhipl``, in name order."""
    names = sorted(n for n in os.listdir(folder) if n.endswith(".nhipl") and not n.endswith("_test.nhipl"))
    return [os.path.join(folder, n) for n in names if os.path.isfile(os.path.join(folder, n))]


def load(paths) -> Policies:
    """Load a file, a folder (its ``*.nhipl`` files) or a list of either."""
    with collector_paused():
        return _load(paths)


def _load(paths) -> Policies:
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    elif not isinstance(paths, (list, tuple)):
        raise TypeError(f"load() takes a path, a folder or a list of them, not {type(paths).__name__}")
    loader = _Loader()
    for p in paths:
        if not isinstance(p, (str, os.PathLike)):
            raise TypeError(f"load() takes paths (str or os.PathLike), not {type(p).__name__}")
        p = os.fspath(p)
        if os.path.isdir(p):
            files = policy_files(p)
            if not files:
                loader.diagnostics.append(
                    Diagnostic("no-policies", "folder holds no `*.nhipl` policy files", Span(p, 1, 1), whole_file=True)
                )
            for f in files:
                loader.project = project_folder(f)
                loader.load_file(f)
        else:
            loader.project = project_folder(p)
            loader.load_file(p)
    if not paths:
        raise PolicyError([Diagnostic("no-policies", "no policy files given", None)])
    return loader.finish()


def loads(text: str, source: str = "<string>") -> Policies:
    """Load policies from a string. Relative imports resolve against ``source``'s folder."""
    if not isinstance(text, str):
        hint = "; decode it first" if isinstance(text, (bytes, bytearray)) else ""
        raise TypeError(f"loads() takes the policy text as a str, not {type(text).__name__}{hint}")
    if not isinstance(source, str):
        raise TypeError(f"loads() takes `source` as a str, not {type(source).__name__}")
    with collector_paused():
        loader = _Loader()
        base = os.path.dirname(source) if not source.startswith("<") else "."
        if not source.startswith("<"):
            loader.project = project_folder(source)
        loader.load_text(text, source, None, base or ".")
        return loader.finish()
