"""What the editor knows across files: every ``.nhipl`` file under the workspace
folders, the strings in them that name rules, agents, tools and imports, and who
imports whom. Open documents are read from the editor's buffer, the rest from
disk (and re-read when they change on disk)."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from importlib import resources

from nhipl.loader import STDLIB_PACKAGE, is_stdlib_name

from .analysis import Lines
from .tokens import IMPORT, Token, string_role, tokenize

MAX_FILES = 5000
RESCAN_SECONDS = 3.0
SKIPPED_FOLDERS = {".git", ".hg", ".venv", "venv", "node_modules", "__pycache__", ".tox", ".nox", "build", "dist"}


@dataclass(frozen=True, slots=True)
class Mention:
    """A string in a file that names something: ``role`` says what (see :mod:`.tokens`)."""

    path: str
    role: str
    value: str
    start: int
    end: int


@dataclass
class FileFacts:
    path: str
    text: str
    tokens: list[Token]
    lines: Lines
    mentions: list[Mention]
    imports: list[str]  # resolved paths of the files it imports


def stdlib_path(name: str) -> str | None:
    """The file of the standard-library policy ``name``, when there is one."""
    resource = resources.files(STDLIB_PACKAGE) / f"{name}.nhipl"
    return str(resource) if resource.is_file() else None


def resolve_import(target: str, importer: str) -> str | None:
    """The file ``import "target"`` in ``importer`` loads (None when there is none)."""
    if is_stdlib_name(target):
        return stdlib_path(target)
    path = os.path.normpath(os.path.join(os.path.dirname(importer), target))
    return path if os.path.isfile(path) else None


def file_facts(path: str, text: str) -> FileFacts:
    tokens = tokenize(text)
    mentions = []
    imports = []
    for i, tok in enumerate(tokens):
        if tok.kind != "string":
            continue
        role = string_role(tokens, i)
        if role is None:
            continue
        mentions.append(Mention(path, role, tok.value, tok.start, tok.end))
        if role == IMPORT:
            resolved = resolve_import(tok.value, path)
            if resolved is not None:
                imports.append(os.path.realpath(resolved))
    return FileFacts(path, text, tokens, Lines(text), mentions, imports)


class Workspace:
    def __init__(self) -> None:
        self.roots: list[str] = []
        self.open: dict[str, str] = {}  # path -> the editor's text
        self._disk: dict[str, tuple[float, FileFacts]] = {}
        self._open_facts: dict[str, FileFacts] = {}
        self._listed: tuple[float, list[str]] | None = None

    def set_roots(self, roots: list[str]) -> None:
        self.roots = roots
        self._listed = None

    def set_open(self, path: str, text: str | None) -> None:
        if text is None:
            self.open.pop(path, None)
        else:
            self.open[path] = text
        self._open_facts.pop(path, None)

    def files(self) -> list[str]:
        """Every ``.nhipl`` file under the workspace folders, plus the open ones (the
        folders are walked again at most every few seconds)."""
        now = time.monotonic()
        if self._listed is None or now - self._listed[0] > RESCAN_SECONDS:
            self._listed = (now, self._walk())
        on_disk = self._listed[1]
        seen = {os.path.realpath(p) for p in on_disk}
        return (on_disk + [p for p in self.open if os.path.realpath(p) not in seen])[:MAX_FILES]

    def _walk(self) -> list[str]:
        found: list[str] = []
        for root in self.roots:
            for folder, dirs, names in os.walk(root):
                dirs[:] = sorted(d for d in dirs if d not in SKIPPED_FOLDERS and not d.startswith("."))
                found.extend(os.path.join(folder, n) for n in sorted(names) if n.endswith(".nhipl"))
                if len(found) >= MAX_FILES:
                    return found
        return found

    def facts(self, path: str) -> FileFacts | None:
        if path in self.open:
            cached = self._open_facts.get(path)
            if cached is None or cached.text is not self.open[path]:
                cached = self._open_facts[path] = file_facts(path, self.open[path])
            return cached
        try:
            mtime = os.stat(path).st_mtime
        except OSError:
            return None
        hit = self._disk.get(path)
        if hit is not None and hit[0] == mtime:
            return hit[1]
        try:
            with open(path, encoding="utf-8") as fh:
                text = fh.read()
        except (OSError, UnicodeDecodeError):
            return None
        facts = file_facts(path, text)
        self._disk[path] = (mtime, facts)
        return facts

    def text(self, path: str) -> str | None:
        facts = self.facts(path)
        return facts.text if facts is not None else None

    def all_facts(self) -> list[FileFacts]:
        return [f for f in (self.facts(p) for p in self.files()) if f is not None]

    def mentions(self, roles: set[str], value: str) -> list[Mention]:
        return [m for f in self.all_facts() for m in f.mentions if m.role in roles and m.value == value]

    def importers(self, path: str) -> list[str]:
        """The workspace files that import ``path``, directly or through other files."""
        key = os.path.realpath(path)
        graph = {f.path: set(f.imports) for f in self.all_facts()}
        found: list[str] = []
        wanted = {key}
        changed = True
        while changed:
            changed = False
            for file, imports in graph.items():
                if file not in found and imports & wanted and os.path.realpath(file) != key:
                    found.append(file)
                    wanted.add(os.path.realpath(file))
                    changed = True
        return found
