"""``nhipl lsp``: the language server, on pygls over stdio.

Diagnostics are refreshed a short pause after the last keystroke (the debounce),
in two steps when the linter is slow: the loader's and checks' problems as soon
as they are known, then the linter's with them. Files that import a saved file
are checked again too. Everything else (hover, definition, references, symbols,
completion, formatting, quick fixes, code lenses) answers from the latest
analysis of the document's text.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys

from lsprotocol import types as T
from pygls.lsp.server import LanguageServer
from pygls.uris import from_fs_path, to_fs_path

import nhipl
from nhipl.fmt import format_text

from . import actions, completion, lenses, navigation, symbols
from .analysis import Analysis, Lines, Problem, analyse, lint_problems
from .incremental import DocumentAnalyser
from .lint_worker import problem_from_dict
from .workspace import Workspace

DEBOUNCE_SECONDS = 0.1
LINT_BUDGET_SECONDS = 0.2  # publish check results first when lint takes longer than this
RUN_COMMAND = "nhipl.runTest"
WORKER_TOKENS = 20_000  # documents this large (about 1,500 lines) are linted in a worker process

_SEVERITY = {"error": T.DiagnosticSeverity.Error, "warning": T.DiagnosticSeverity.Warning, "note": T.DiagnosticSeverity.Information}
_SYMBOL_KIND = {
    symbols.RULE: T.SymbolKind.Function,
    symbols.AGENT: T.SymbolKind.Class,
    symbols.TOOL: T.SymbolKind.Interface,
    symbols.TASK_BLOCK: T.SymbolKind.Namespace,
    symbols.TEST_BLOCK: T.SymbolKind.Method,
    symbols.INVARIANT_BLOCK: T.SymbolKind.Constant,
    symbols.IMPORT: T.SymbolKind.Module,
}
_COMPLETION_KIND = {
    "keyword": T.CompletionItemKind.Keyword,
    "snippet": T.CompletionItemKind.Keyword,
    "value": T.CompletionItemKind.Value,
    "path": T.CompletionItemKind.Field,
    "function": T.CompletionItemKind.Function,
}

log = logging.getLogger("nhipl.lsp")


class NhiplLanguageServer(LanguageServer):
    def __init__(self) -> None:
        super().__init__("nhipl", nhipl.__version__, text_document_sync_kind=T.TextDocumentSyncKind.Incremental)
        self.index = Workspace()
        self.analyses: dict[str, Analysis] = {}
        self.analysers: dict[str, DocumentAnalyser] = {}
        self.lint_locks: dict[str, asyncio.Lock] = {}
        self.lint_seconds: dict[str, float] = {}  # how long the last lint of each document took
        self.uris: dict[str, str] = {}  # path -> the client's uri for it
        self.pending: dict[str, asyncio.Task] = {}
        self.lint_workers: dict[str, asyncio.subprocess.Process] = {}
        self.outcomes: dict[tuple[str, str, str, int], lenses.Outcome] = {}

    def path_of(self, uri: str) -> str:
        """The file a document is (its uri, for a document not saved to a file)."""
        path = to_fs_path(uri) or uri
        self.uris[path] = uri
        return path

    def uri_of(self, path: str) -> str:
        return self.uris.get(path) or from_fs_path(path)

    # -- text and positions -----------------------------------------------------------------
    def text_of(self, uri: str) -> str:
        return self.workspace.get_text_document(uri).source

    def lines_of(self, path: str) -> Lines | None:
        text = self.index.text(path)
        if text is None:
            try:
                with open(path, encoding="utf-8") as fh:
                    text = fh.read()
            except (OSError, UnicodeDecodeError):
                return None
        return Lines(text)

    def position(self, lines: Lines, line: int, column: int) -> T.Position:
        line = max(line, 1)
        return T.Position(line - 1, lines.utf16(line, column))

    def location(self, place: navigation.Place) -> T.Location | None:
        lines = self.lines_of(place.path)
        if lines is None:
            return None
        return T.Location(
            self.uri_of(place.path),
            T.Range(self.position(lines, place.line, place.column), self.position(lines, place.end_line, place.end_column)),
        )

    def offsets_range(self, lines: Lines, start: int, end: int) -> T.Range:
        return T.Range(self.position(lines, *lines.position(start)), self.position(lines, *lines.position(end)))

    def analysis_for(self, uri: str) -> Analysis:
        """The analysis of the document's current text (made now when the cached one is stale)."""
        path = self.path_of(uri)
        text = self.text_of(uri)
        cached = self.analyses.get(path)
        if cached is None or cached.text != text:
            cached = self.analyses[path] = self.analyser(path).analyse(text)
        return cached

    def analyser(self, path: str) -> DocumentAnalyser:
        found = self.analysers.get(path)
        if found is None:
            found = self.analysers[path] = DocumentAnalyser(path)
        return found

    def offset_of(self, analysis: Analysis, position: T.Position) -> int:
        return Lines(analysis.text).from_utf16(position.line, position.character)

    # -- diagnostics ------------------------------------------------------------------------
    def diagnostic(self, lines: Lines, problem: Problem) -> T.Diagnostic:
        span = problem.span
        end_line, end_column = span.end_line, span.end_column
        if not end_line or end_line != span.line:
            # one line is enough to point at (a whole rule would cover the screen)
            end_line, end_column = span.line, len(lines.line_text(span.line)) + 1
            if end_column <= span.column:
                end_column = span.column + 1
        related = []
        for where, label in problem.related:
            place = navigation.Place(where.source, where.line, where.column, where.line, where.column + 1)
            loc = self.location(place)
            if loc is not None:
                related.append(T.DiagnosticRelatedInformation(loc, label))
        message = problem.message + (f"\nhelp: {problem.help}" if problem.help else "")
        return T.Diagnostic(
            range=T.Range(self.position(lines, span.line, span.column), self.position(lines, end_line, end_column)),
            message=message,
            severity=_SEVERITY.get(problem.severity, T.DiagnosticSeverity.Error),
            code=problem.code,
            source="nhipl",
            related_information=related or None,
        )

    def publish(self, analysis: Analysis, version: int | None = None, carried: list[Problem] = ()) -> None:
        lines = Lines(analysis.text)
        diagnostics = [self.diagnostic(lines, p) for p in [*analysis.problems, *carried]]
        self.text_document_publish_diagnostics(
            T.PublishDiagnosticsParams(uri=self.uri_of(analysis.path), diagnostics=diagnostics, version=version)
        )

    def schedule(self, uri: str, delay: float = DEBOUNCE_SECONDS, dependents: bool = False) -> None:
        task = self.pending.pop(uri, None)
        if task is not None:
            task.cancel()
        self.pending[uri] = asyncio.get_running_loop().create_task(self.refresh(uri, delay, dependents))

    async def refresh(self, uri: str, delay: float, dependents: bool) -> None:
        await asyncio.sleep(delay)
        path = self.path_of(uri)
        loop = asyncio.get_running_loop()
        document = self.workspace.get_text_document(uri)
        text, version = document.source, document.version
        analyser = self.analyser(path)
        analysis = await loop.run_in_executor(None, analyser.analyse, text)
        if self.text_of(uri) != text:
            return  # a newer edit's refresh is on its way
        previous = self.analyses.get(path)
        self.analyses[path] = analysis
        self.stop_lint(uri)  # the text it lints is stale now
        linting = asyncio.ensure_future(self.lint(uri, analysis))
        # wait a moment for the linter, unless it was slower than that last time
        budget = LINT_BUDGET_SECONDS if self.lint_seconds.get(uri, 0.0) <= LINT_BUDGET_SECONDS else 0.0
        try:
            found = await asyncio.wait_for(asyncio.shield(linting), budget)
        except asyncio.TimeoutError:
            self.publish(analysis, version, carried=_unchanged_lint(previous, analysis))
            found = await asyncio.shield(linting)  # a newer edit cancels this refresh, never a lint under way
        if found is None or self.text_of(uri) != text:
            return
        if not analysis.linted:
            analysis.problems.extend(found)
            analysis.linted = True
        self.publish(analysis, version)
        if dependents:
            for importer in self.index.importers(path):
                await self.refresh_closed_or_open(importer)

    async def lint(self, uri: str, analysis: Analysis) -> list[Problem] | None:
        """The linter's findings, one run at a time per document; None when the
        text changed while this run waited for the previous one."""
        lock = self.lint_locks.setdefault(uri, asyncio.Lock())
        async with lock:
            if self.text_of(uri) != analysis.text:
                return None
            loop = asyncio.get_running_loop()
            started = loop.time()
            if len(analysis.tokens) < WORKER_TOKENS:
                found = await loop.run_in_executor(None, lint_problems, analysis)
            else:
                found = await self.lint_elsewhere(uri, analysis)
            self.lint_seconds[uri] = loop.time() - started
            return found

    async def lint_elsewhere(self, uri: str, analysis: Analysis) -> list[Problem] | None:
        """Lint in a worker process, killed when a newer text of the document comes (then None)."""
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "nhipl.lsp.lint_worker",
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )
        self.lint_workers[uri] = proc
        try:
            out, err = await proc.communicate(json.dumps({"path": analysis.path, "text": analysis.text}).encode())
        finally:
            if self.lint_workers.get(uri) is proc:
                del self.lint_workers[uri]
        if proc.returncode != 0:
            if proc.returncode > 0:
                log.error("the lint worker failed: %s", err.decode(errors="replace")[-2000:])
            return None
        return [problem_from_dict(d) for d in json.loads(out)]

    def stop_lint(self, uri: str) -> None:
        proc = self.lint_workers.pop(uri, None)
        if proc is not None and proc.returncode is None:
            proc.kill()

    async def refresh_closed_or_open(self, path: str) -> None:
        text = self.index.text(path)
        if text is None:
            return
        loop = asyncio.get_running_loop()
        analysis = await loop.run_in_executor(None, lambda: analyse(text, path))
        if path in self.index.open:
            self.analyses[path] = analysis
        self.publish(analysis)


def _unchanged_lint(previous: Analysis | None, current: Analysis) -> list[Problem]:
    """The previous run's lint findings on lines the edit left as they were: shown
    until the linter has run on the new text, so that findings do not blink."""
    if previous is None or not previous.linted:
        return []
    before, after = Lines(previous.text), Lines(current.text)
    return [
        p
        for p in previous.problems
        if p.from_linter and before.line_text(p.span.line) == after.line_text(p.span.line)
    ]


server = NhiplLanguageServer()


@server.feature(T.INITIALIZED)
def initialized(ls: NhiplLanguageServer, params: T.InitializedParams) -> None:
    roots = [to_fs_path(f.uri) for f in (ls.workspace.folders or {}).values()]
    if not roots and ls.workspace.root_path:
        roots = [ls.workspace.root_path]
    roots = [r for r in roots if r and os.path.isdir(r)]
    ls.index.set_roots(roots)
    if roots:
        # Imports stay inside the folder nhipl runs from (see docs/security.md): for the editor,
        # that is the (first) workspace folder, as if `nhipl check` ran there.
        os.chdir(roots[0])


@server.feature(T.WORKSPACE_DID_CHANGE_WORKSPACE_FOLDERS)
def folders_changed(ls: NhiplLanguageServer, params: T.DidChangeWorkspaceFoldersParams) -> None:
    initialized(ls, None)


@server.feature(T.TEXT_DOCUMENT_DID_OPEN)
async def did_open(ls: NhiplLanguageServer, params: T.DidOpenTextDocumentParams) -> None:
    uri = params.text_document.uri
    ls.index.set_open(ls.path_of(uri), params.text_document.text)
    ls.schedule(uri, delay=0)


@server.feature(T.TEXT_DOCUMENT_DID_CHANGE)
async def did_change(ls: NhiplLanguageServer, params: T.DidChangeTextDocumentParams) -> None:
    uri = params.text_document.uri
    path = ls.path_of(uri)
    ls.index.set_open(path, ls.text_of(uri))
    ls.outcomes = {k: v for k, v in ls.outcomes.items() if k[0] != path}
    ls.schedule(uri)


@server.feature(T.TEXT_DOCUMENT_DID_SAVE)
async def did_save(ls: NhiplLanguageServer, params: T.DidSaveTextDocumentParams) -> None:
    ls.schedule(params.text_document.uri, delay=0, dependents=True)


@server.feature(T.TEXT_DOCUMENT_DID_CLOSE)
def did_close(ls: NhiplLanguageServer, params: T.DidCloseTextDocumentParams) -> None:
    uri = params.text_document.uri
    path = ls.path_of(uri)
    ls.index.set_open(path, None)
    ls.analyses.pop(path, None)
    ls.analysers.pop(path, None)
    ls.lint_locks.pop(uri, None)
    ls.stop_lint(uri)
    task = ls.pending.pop(uri, None)
    if task is not None:
        task.cancel()
    ls.text_document_publish_diagnostics(T.PublishDiagnosticsParams(uri=uri, diagnostics=[]))


@server.feature(T.TEXT_DOCUMENT_HOVER)
def hover(ls: NhiplLanguageServer, params: T.HoverParams) -> T.Hover | None:
    analysis = ls.analysis_for(params.text_document.uri)
    found = navigation.hover(analysis, ls.index, ls.offset_of(analysis, params.position))
    if found is None:
        return None
    text, target = found
    return T.Hover(T.MarkupContent(T.MarkupKind.Markdown, text), ls.offsets_range(Lines(analysis.text), target.start, target.end))


@server.feature(T.TEXT_DOCUMENT_DEFINITION)
def definition(ls: NhiplLanguageServer, params: T.DefinitionParams) -> list[T.Location]:
    analysis = ls.analysis_for(params.text_document.uri)
    places = navigation.definition(analysis, ls.index, ls.offset_of(analysis, params.position))
    return [loc for loc in map(ls.location, places) if loc is not None]


@server.feature(T.TEXT_DOCUMENT_REFERENCES)
def references(ls: NhiplLanguageServer, params: T.ReferenceParams) -> list[T.Location]:
    analysis = ls.analysis_for(params.text_document.uri)
    places = navigation.references(analysis, ls.index, ls.offset_of(analysis, params.position), params.context.include_declaration)
    return [loc for loc in map(ls.location, places) if loc is not None]


def _document_symbol(lines: Lines, symbol: symbols.Symbol, ls: NhiplLanguageServer) -> T.DocumentSymbol:
    span = symbol.span
    start = ls.position(lines, span.line, span.column)
    end = ls.position(lines, span.end_line or span.line, span.end_column or span.column + 1)
    return T.DocumentSymbol(
        name=symbol.name or "(unnamed)",
        kind=_SYMBOL_KIND[symbol.kind],
        range=T.Range(start, end),
        selection_range=T.Range(start, ls.position(lines, span.line, len(lines.line_text(span.line)) + 1)),
        detail=symbol.detail,
        children=[_document_symbol(lines, c, ls) for c in symbol.children] or None,
    )


@server.feature(T.TEXT_DOCUMENT_DOCUMENT_SYMBOL)
def document_symbols(ls: NhiplLanguageServer, params: T.DocumentSymbolParams) -> list[T.DocumentSymbol]:
    analysis = ls.analysis_for(params.text_document.uri)
    lines = Lines(analysis.text)
    return [_document_symbol(lines, s, ls) for s in symbols.document_symbols(analysis)]


@server.feature(T.WORKSPACE_SYMBOL)
def workspace_symbols(ls: NhiplLanguageServer, params: T.WorkspaceSymbolParams) -> list[T.WorkspaceSymbol]:
    out = []
    for name, kind, facts, start, end in symbols.workspace_symbols(ls.index, params.query):
        location = T.Location(from_fs_path(facts.path), ls.offsets_range(facts.lines, start, end))
        out.append(T.WorkspaceSymbol(name=name, kind=_SYMBOL_KIND[kind], location=location))
    return out


@server.feature(T.TEXT_DOCUMENT_COMPLETION, T.CompletionOptions(trigger_characters=[".", '"']))
def complete(ls: NhiplLanguageServer, params: T.CompletionParams) -> T.CompletionList:
    analysis = ls.analysis_for(params.text_document.uri)
    lines = Lines(analysis.text)
    items = []
    for s in completion.complete(analysis, ls.index, ls.offset_of(analysis, params.position)):
        items.append(
            T.CompletionItem(
                label=s.label,
                kind=_COMPLETION_KIND.get(s.kind, T.CompletionItemKind.Text),
                detail=s.detail or None,
                text_edit=T.TextEdit(ls.offsets_range(lines, s.start, s.end), s.insert),
            )
        )
    return T.CompletionList(is_incomplete=False, items=items)


@server.feature(T.TEXT_DOCUMENT_FORMATTING)
def formatting(ls: NhiplLanguageServer, params: T.DocumentFormattingParams) -> list[T.TextEdit] | None:
    uri = params.text_document.uri
    text = ls.text_of(uri)
    try:
        formatted = format_text(text, ls.path_of(uri))
    except nhipl.NhiplError as err:
        ls.window_show_message(T.ShowMessageParams(T.MessageType.Warning, f"nhipl fmt: {str(err).splitlines()[0]}"))
        return None
    if formatted == text:
        return []
    lines = Lines(text)
    return [T.TextEdit(ls.offsets_range(lines, 0, len(text)), formatted)]


@server.feature(T.TEXT_DOCUMENT_CODE_ACTION, T.CodeActionOptions(code_action_kinds=[T.CodeActionKind.QuickFix]))
def code_actions(ls: NhiplLanguageServer, params: T.CodeActionParams) -> list[T.CodeAction]:
    uri = params.text_document.uri
    analysis = ls.analysis_for(uri)
    if not analysis.linted and len(analysis.tokens) < WORKER_TOKENS:  # a large one is linted in the background
        analysis.problems.extend(lint_problems(analysis))
        analysis.linted = True
    lines = Lines(analysis.text)
    start = lines.from_utf16(params.range.start.line, params.range.start.character)
    end = lines.from_utf16(params.range.end.line, params.range.end.character)
    out = []
    for fix in actions.fixes(analysis, start, end):
        edits = [T.TextEdit(ls.offsets_range(lines, e.start, e.end), e.text) for e in fix.edits]
        fixed = [d for d in params.context.diagnostics if d.code in fix.codes]
        out.append(
            T.CodeAction(
                title=fix.title,
                kind=T.CodeActionKind.QuickFix,
                diagnostics=fixed or None,
                is_preferred=fix.preferred or None,
                edit=T.WorkspaceEdit(changes={uri: edits}),
            )
        )
    return out


@server.feature(T.TEXT_DOCUMENT_CODE_LENS)
def code_lens(ls: NhiplLanguageServer, params: T.CodeLensParams) -> list[T.CodeLens]:
    uri = params.text_document.uri
    analysis = ls.analysis_for(uri)
    lines = Lines(analysis.text)
    out = []
    for lens in lenses.lenses(analysis):
        outcome = ls.outcomes.get((analysis.path, lens.kind, lens.name, lens.line))
        title = outcome.title if outcome is not None else f"▶ Run {lens.kind}"
        at = ls.position(lines, lens.line, lens.column)
        command = T.Command(title=title, command=RUN_COMMAND, arguments=[uri, lens.kind, lens.name, lens.line])
        out.append(T.CodeLens(range=T.Range(at, at), command=command))
    return out


@server.command(RUN_COMMAND)
async def run_test(ls: NhiplLanguageServer, uri: str, kind: str, name: str, line: int) -> dict:
    """Runs one test or invariant; the lens then shows its outcome. Returns the outcome."""
    if kind not in (lenses.TEST, lenses.INVARIANT) or not isinstance(name, str) or not isinstance(line, int):
        return lenses.Outcome(False, "⚠ not run", "bad arguments").to_dict()
    if not isinstance(uri, str) or ls.path_of(uri) not in ls.index.open:
        return lenses.Outcome(False, "⚠ not run", "only the tests of an open document run").to_dict()
    analysis = ls.analysis_for(uri)
    loop = asyncio.get_running_loop()
    outcome = await loop.run_in_executor(None, lambda: lenses.run(analysis, kind, name, line))
    ls.outcomes[(analysis.path, kind, name, line)] = outcome
    workspace_caps = ls.client_capabilities.workspace
    if workspace_caps and workspace_caps.code_lens and workspace_caps.code_lens.refresh_support:
        ls.workspace_code_lens_refresh(None)
    return outcome.to_dict()


def serve() -> None:
    """Serve the language server protocol on stdin and stdout until the client exits."""
    server.start_io()
