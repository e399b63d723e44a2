"""End to end: pytest-lsp drives the real `nhipl lsp` over stdio."""

from __future__ import annotations

import asyncio
import sys
import textwrap
from pathlib import Path

import pytest

pytest.importorskip("pygls", reason="the language server needs the `lsp` extra (pygls)")
pytest_lsp = pytest.importorskip("pytest_lsp", reason="the end-to-end tests need pytest-lsp")

from lsprotocol import types as T  # noqa: E402
from pygls.uris import from_fs_path  # noqa: E402
from pytest_lsp import ClientServerConfig, LanguageClient  # noqa: E402

from nhipl.fmt import format_text  # noqa: E402
from nhipl.loader import stdlib_names  # noqa: E402

POLICY = textwrap.dedent(
    """\
    agent "spiffe://acme.org/agents/triage" {
        owner: "team-support",
        groups: ["triage", "readers"],
        max_credential_ttl: 15m
    }

    tool "payments.*" { sensitive: true, tags: ["financial"] }

    @id("read-tickets")
    @maps("owasp-asi:2026:ASI03")
    permit agent in "triage" to call "zendesk.read_ticket"
        when task.intent == "triage-ticket" and args.ticket != ""
        grant ttl 5m
        because "triage reads tickets";

    @id("no-payments")
    forbid any agent to call "payments.*"
        unless approval.granted
        because "financial transfers need a human";
    """
)

TESTS = textwrap.dedent(
    """\
    import "../policies/support.nhipl";

    test "triage reads tickets" {
        request {
            principal: "spiffe://acme.org/agents/triage",
            tool: "zendesk.read_ticket",
            task: { intent: "triage-ticket" },
            args: { ticket: "T-1" }
        }
        expect allow by "read-tickets"
    }

    test "wrong expectation" {
        request { principal: "spiffe://acme.org/agents/triage", tool: "payments.send" }
        expect allow
    }
    """
)

TIMEOUT = 60
pytestmark = pytest.mark.asyncio


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "policies").mkdir()
    (tmp_path / "tests").mkdir()
    (tmp_path / "policies" / "support.nhipl").write_text(POLICY)
    (tmp_path / "tests" / "support_test.nhipl").write_text(TESTS)
    return tmp_path


@pytest_lsp.fixture(config=ClientServerConfig(server_command=[sys.executable, "-m", "nhipl", "lsp", "--stdio"]))
async def client(lsp_client: LanguageClient, project: Path):
    capabilities = T.ClientCapabilities(
        workspace=T.WorkspaceClientCapabilities(code_lens=T.CodeLensWorkspaceClientCapabilities(refresh_support=True))
    )
    lsp_client.lens_refreshes = 0

    @lsp_client.feature(T.WORKSPACE_CODE_LENS_REFRESH)
    def lens_refresh(params) -> None:
        lsp_client.lens_refreshes += 1

    folder = T.WorkspaceFolder(uri=from_fs_path(str(project)), name="project")
    await lsp_client.initialize_session(T.InitializeParams(capabilities=capabilities, workspace_folders=[folder]))
    lsp_client.project = project
    yield
    await lsp_client.shutdown_session()


def uri_of(client: LanguageClient, relative: str) -> str:
    return from_fs_path(str(client.project / relative))


async def diagnostics_until(client: LanguageClient, uri: str, wanted) -> list[T.Diagnostic]:
    """The diagnostics published for ``uri`` once ``wanted(diagnostics)`` holds."""

    async def wait():
        while True:
            found = client.diagnostics.get(uri)
            if found is not None and wanted(found):
                return found
            await client.wait_for_notification(T.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)

    return await asyncio.wait_for(wait(), TIMEOUT)


def open_doc(client: LanguageClient, relative: str, text: str | None = None) -> str:
    uri = uri_of(client, relative)
    text = (client.project / relative).read_text() if text is None else text
    client.text_document_did_open(T.DidOpenTextDocumentParams(T.TextDocumentItem(uri, "nhipl", 1, text)))
    return uri


def change(client: LanguageClient, uri: str, version: int, text: str) -> None:
    client.text_document_did_change(
        T.DidChangeTextDocumentParams(
            T.VersionedTextDocumentIdentifier(version=version, uri=uri),
            [T.TextDocumentContentChangeWholeDocument(text=text)],
        )
    )


def position_of(text: str, needle: str, offset: int = 1) -> T.Position:
    index = text.index(needle) + offset
    line = text.count("\n", 0, index)
    return T.Position(line, index - (text.rfind("\n", 0, index) + 1))


def codes(diagnostics) -> list[str]:
    return sorted(str(d.code) for d in diagnostics)


# ---- diagnostics ---------------------------------------------------------------------------


async def test_diagnostics_appear_update_on_change_and_clear_on_fix(client: LanguageClient):
    uri = open_doc(client, "policies/support.nhipl")
    first = await diagnostics_until(client, uri, lambda ds: True)
    assert not [d for d in first if d.severity == T.DiagnosticSeverity.Error]

    duplicated = POLICY + '\n@id("read-tickets")\nforbid any agent to call "shell.*";\n'
    change(client, uri, 2, duplicated)
    found = await diagnostics_until(client, uri, lambda ds: "duplicate-id" in codes(ds))
    dup = next(d for d in found if d.code == "duplicate-id")
    assert dup.severity == T.DiagnosticSeverity.Error
    assert dup.range.start.line == duplicated.count("\n") - 2
    assert "first defined" in dup.message
    related = dup.related_information[0]
    assert related.message == "first defined here"
    assert related.location.range.start.line == POLICY.split("\n").index('@id("read-tickets")')

    change(client, uri, 3, POLICY)
    await diagnostics_until(client, uri, lambda ds: "duplicate-id" not in codes(ds))


async def test_lint_findings_are_warnings_with_codes(client: LanguageClient):
    text = POLICY + '\n@id("open-search")\npermit agent "spiffe://acme.org/agents/other" to call "search.web";\n'
    uri = open_doc(client, "policies/support.nhipl", text)
    found = await diagnostics_until(client, uri, lambda ds: "NHI002" in codes(ds))
    finding = next(d for d in found if d.code == "NHI002")
    assert finding.severity == T.DiagnosticSeverity.Warning
    assert finding.range.start.line == text.split("\n").index('permit agent "spiffe://acme.org/agents/other" to call "search.web";')


async def test_a_file_with_syntax_errors_gets_every_diagnostic(client: LanguageClient):
    text = POLICY + textwrap.dedent(
        """
        @id("broken-one")
        permit any agent to call "a.b" when args.x = 1;

        @id("read-tickets")
        forbid any agent to call "c.d";

        permit any agent to call "e.f" when args.y == 1

        forbid any agent to call "g.h" when nosuch.path == 1;
        """
    )
    uri = open_doc(client, "policies/support.nhipl", text)
    found = await diagnostics_until(client, uri, lambda ds: "unknown-path" in codes(ds))
    lines = text.split("\n")
    by_code = {}
    for d in found:
        by_code.setdefault(str(d.code), []).append(d.range.start.line)
    assert sorted(by_code["syntax-error"]) == [
        lines.index('permit any agent to call "a.b" when args.x = 1;'),
        lines.index('permit any agent to call "e.f" when args.y == 1'),
    ]
    assert by_code["duplicate-id"] == [lines.index('@id("read-tickets")', 10)]
    assert by_code["unknown-path"] == [lines.index('forbid any agent to call "g.h" when nosuch.path == 1;')]


async def test_files_that_import_a_saved_file_are_checked_again(client: LanguageClient):
    tests_uri = open_doc(client, "tests/support_test.nhipl")
    await diagnostics_until(client, tests_uri, lambda ds: "unknown-rule" not in codes(ds))
    policy = client.project / "policies" / "support.nhipl"
    policy.write_text(POLICY.replace('@id("read-tickets")', '@id("read-tickets-v2")'))
    policy_uri = open_doc(client, "policies/support.nhipl")
    client.text_document_did_save(T.DidSaveTextDocumentParams(T.TextDocumentIdentifier(policy_uri)))
    found = await diagnostics_until(client, tests_uri, lambda ds: "unknown-rule" in codes(ds))
    assert any("read-tickets" in d.message for d in found)


# ---- hover, definition, references, symbols ------------------------------------------------


async def test_hover_on_a_rule_id_shows_effect_because_maps_and_tests(client: LanguageClient):
    uri = open_doc(client, "tests/support_test.nhipl")
    result = await client.text_document_hover_async(T.HoverParams(T.TextDocumentIdentifier(uri), position_of(TESTS, '"read-tickets"')))
    text = result.contents.value
    assert "**permit** rule `read-tickets`" in text
    assert "because: triage reads tickets" in text
    assert "`owasp-asi:2026:ASI03`" in text
    assert "tested by: `triage reads tickets` (tests/support_test.nhipl:3)" in text


async def test_hover_on_keywords_paths_and_declarations(client: LanguageClient):
    uri = open_doc(client, "policies/support.nhipl")
    keyword = await client.text_document_hover_async(T.HoverParams(T.TextDocumentIdentifier(uri), position_of(POLICY, "unless")))
    assert "`unless`" in keyword.contents.value and "evaluated only when" in keyword.contents.value
    path = await client.text_document_hover_async(T.HoverParams(T.TextDocumentIdentifier(uri), position_of(POLICY, "task.intent", 6)))
    assert "**`task.intent`**: request path" in path.contents.value
    group = await client.text_document_hover_async(T.HoverParams(T.TextDocumentIdentifier(uri), position_of(POLICY, '"triage" to')))
    assert "spiffe://acme.org/agents/triage" in group.contents.value
    tool = await client.text_document_hover_async(T.HoverParams(T.TextDocumentIdentifier(uri), position_of(POLICY, '"payments.*"\n')))
    assert "`sensitive`: `true`" in tool.contents.value


async def test_definition_across_files(client: LanguageClient):
    uri = open_doc(client, "tests/support_test.nhipl")
    doc = T.TextDocumentIdentifier(uri)
    rule = await client.text_document_definition_async(T.DefinitionParams(doc, position_of(TESTS, '"read-tickets"')))
    assert [loc.uri for loc in rule] == [uri_of(client, "policies/support.nhipl")]
    assert rule[0].range.start.line == POLICY.split("\n").index('@id("read-tickets")')
    imported = await client.text_document_definition_async(T.DefinitionParams(doc, position_of(TESTS, '"../policies')))
    assert [loc.uri for loc in imported] == [uri_of(client, "policies/support.nhipl")]
    agent = await client.text_document_definition_async(T.DefinitionParams(doc, position_of(TESTS, '"spiffe://')))
    assert agent[0].range.start.line == 0 and agent[0].uri == uri_of(client, "policies/support.nhipl")


async def test_definition_of_a_standard_library_import(client: LanguageClient):
    name = stdlib_names()[0]
    text = f'import "{name}";\n'
    uri = open_doc(client, "policies/lib.nhipl", text)
    found = await client.text_document_definition_async(T.DefinitionParams(T.TextDocumentIdentifier(uri), T.Position(0, 9)))
    assert len(found) == 1 and found[0].uri.endswith(f"/{name}.nhipl")


async def test_references_of_a_rule_id(client: LanguageClient):
    uri = open_doc(client, "policies/support.nhipl")
    found = await client.text_document_references_async(
        T.ReferenceParams(
            text_document=T.TextDocumentIdentifier(uri),
            position=position_of(POLICY, '"read-tickets"'),
            context=T.ReferenceContext(include_declaration=True),
        )
    )
    assert sorted((loc.uri.rsplit("/", 2)[-2], loc.range.start.line) for loc in found) == [
        ("policies", POLICY.split("\n").index('@id("read-tickets")')),
        ("tests", TESTS.split("\n").index('    expect allow by "read-tickets"')),
    ]


async def test_document_and_workspace_symbols(client: LanguageClient):
    uri = open_doc(client, "policies/support.nhipl")
    found = await client.text_document_document_symbol_async(T.DocumentSymbolParams(T.TextDocumentIdentifier(uri)))
    assert [(s.name, s.kind) for s in found] == [
        ("spiffe://acme.org/agents/triage", T.SymbolKind.Class),
        ("payments.*", T.SymbolKind.Interface),
        ("read-tickets", T.SymbolKind.Function),
        ("no-payments", T.SymbolKind.Function),
    ]
    everywhere = await client.workspace_symbol_async(T.WorkspaceSymbolParams(query="tickets"))
    assert sorted(s.name for s in everywhere) == ["read-tickets", "triage reads tickets"]


# ---- completion, formatting, quick fixes, code lenses --------------------------------------


async def complete_at(client: LanguageClient, text: str, needle: str) -> list[str]:
    uri = open_doc(client, "policies/draft.nhipl", text.replace(needle, needle, 1))
    at = position_of(text, needle, len(needle))
    result = await client.text_document_completion_async(T.CompletionParams(T.TextDocumentIdentifier(uri), at))
    return [item.label for item in result.items]


async def test_completion_of_argument_names_after_args_dot(client: LanguageClient):
    text = POLICY + '\npermit any agent to call "zendesk.read_ticket" when args.\n'
    assert "ticket" in await complete_at(client, text, "when args.")


async def test_completion_of_declared_agents_in_a_subject(client: LanguageClient):
    text = POLICY + '\npermit agent "'
    labels = await complete_at(client, text, 'permit agent "')
    assert labels == ["spiffe://acme.org/agents/triage"]


async def test_completion_of_keywords_in_place(client: LanguageClient):
    actions = await complete_at(client, POLICY + "\nforbid any agent to ", "forbid any agent to ")
    assert {"call", "delegate", "issue_credential"} <= set(actions)
    starts = await complete_at(client, POLICY + "\n", POLICY + "\n")
    assert {"permit", "forbid", "require approval for", "agent", "tool", "test"} <= set(starts)
    groups = await complete_at(client, POLICY + '\npermit agent in "', 'permit agent in "')
    assert set(groups) == {"triage", "readers"}


async def test_formatting_is_fmt(client: LanguageClient):
    messy = 'permit   any agent to call "a.b"   grant ttl 5m ;\n'
    uri = open_doc(client, "policies/messy.nhipl", messy)
    edits = await client.text_document_formatting_async(
        T.DocumentFormattingParams(T.TextDocumentIdentifier(uri), T.FormattingOptions(tab_size=4, insert_spaces=True))
    )
    assert len(edits) == 1 and edits[0].new_text == format_text(messy)


def apply(text: str, edits: list[T.TextEdit]) -> str:
    lines = text.split("\n")
    starts = [0]
    for line in lines:
        starts.append(starts[-1] + len(line) + 1)
    for edit in sorted(edits, key=lambda e: (e.range.start.line, e.range.start.character), reverse=True):
        s = starts[edit.range.start.line] + edit.range.start.character
        e = starts[edit.range.end.line] + edit.range.end.character
        text = text[:s] + edit.new_text + text[e:]
    return text


async def test_quick_fix_adds_grant_ttl(client: LanguageClient):
    text = POLICY + '\n@id("open-search")\npermit agent "spiffe://acme.org/agents/other" to call "search.web" because "look things up";\n'
    uri = open_doc(client, "policies/support.nhipl", text)
    found = await diagnostics_until(client, uri, lambda ds: "NHI002" in codes(ds))
    finding = next(d for d in found if d.code == "NHI002")
    result = await client.text_document_code_action_async(
        T.CodeActionParams(T.TextDocumentIdentifier(uri), finding.range, T.CodeActionContext(diagnostics=[finding]))
    )
    fix = next(a for a in result if "grant ttl" in a.title)
    assert fix.diagnostics and fix.diagnostics[0].code == "NHI002"
    fixed = apply(text, fix.edit.changes[uri])
    assert 'to call "search.web" grant ttl 15m because "look things up";' in fixed
    change(client, uri, 2, fixed)
    await diagnostics_until(client, uri, lambda ds: "NHI002" not in codes(ds) and not any(d.severity == 1 for d in ds))


async def test_quick_fixes_add_an_id_and_has_guards(client: LanguageClient):
    text = 'permit any agent to call "mail.send" when args.to endswith "@acme.com" or args.cc == "" grant ttl 5m;\n'
    uri = open_doc(client, "policies/mail.nhipl", text)
    result = await client.text_document_code_action_async(
        T.CodeActionParams(T.TextDocumentIdentifier(uri), T.Range(T.Position(0, 0), T.Position(0, 5)), T.CodeActionContext(diagnostics=[]))
    )
    titles = {a.title: a for a in result}
    with_id = apply(text, titles['Add `@id("permit-mail-send")`'].edit.changes[uri])
    assert with_id.startswith('@id("permit-mail-send")\npermit any agent')
    guarded = apply(text, titles["Guard `args.to`, `args.cc` with `has`"].edit.changes[uri])
    assert 'when args has to and args has cc and (args.to endswith "@acme.com" or args.cc == "") grant' in guarded
    import nhipl

    # the guarded permit matches exactly what it matched before, without the error
    before, after = nhipl.loads(text), nhipl.loads(guarded)
    for args in ({"to": "a@acme.com", "cc": "x"}, {"to": "a@evil.com", "cc": ""}, {"to": "a@evil.com", "cc": "x"}, {}):
        request = {"principal": "spiffe://acme.org/a", "tool": "mail.send", "args": args}
        assert before.evaluate(request).effect == after.evaluate(request).effect
    assert after.evaluate({"principal": "spiffe://acme.org/a", "tool": "mail.send"}).errors == ()


async def test_code_lens_runs_a_test_and_shows_the_result(client: LanguageClient):
    uri = open_doc(client, "tests/support_test.nhipl")
    await diagnostics_until(client, uri, lambda ds: True)
    lenses = await client.text_document_code_lens_async(T.CodeLensParams(T.TextDocumentIdentifier(uri)))
    assert [(lens.range.start.line, lens.command.title) for lens in lenses] == [(2, "▶ Run test"), (12, "▶ Run test")]
    passed = await client.workspace_execute_command_async(
        T.ExecuteCommandParams(lenses[0].command.command, lenses[0].command.arguments)
    )
    assert passed["passed"] is True and passed["title"] == "✓ passed: allow by read-tickets"
    failed = await client.workspace_execute_command_async(
        T.ExecuteCommandParams(lenses[1].command.command, lenses[1].command.arguments)
    )
    assert failed["passed"] is False and failed["title"] == "✗ failed: got deny by no-payments"
    assert "expected: allow" in failed["detail"]
    assert client.lens_refreshes == 2
    again = await client.text_document_code_lens_async(T.CodeLensParams(T.TextDocumentIdentifier(uri)))
    assert [lens.command.title for lens in again] == ["✓ passed: allow by read-tickets", "✗ failed: got deny by no-payments"]


async def test_a_document_not_saved_to_a_file_gets_diagnostics(client: LanguageClient):
    uri = "untitled:Untitled-1"
    client.text_document_did_open(T.DidOpenTextDocumentParams(T.TextDocumentItem(uri, "nhipl", 1, "permit any agent to call;\n")))
    found = await diagnostics_until(client, uri, lambda ds: bool(ds))
    assert [(d.code, d.range.start.line) for d in found] == [("syntax-error", 0)]


async def test_the_run_command_runs_only_tests_of_open_documents(client: LanguageClient):
    closed = uri_of(client, "tests/support_test.nhipl")
    outcome = await client.workspace_execute_command_async(T.ExecuteCommandParams("nhipl.runTest", [closed, "test", "triage reads tickets", 3]))
    assert outcome == {"passed": False, "title": "⚠ not run", "detail": "only the tests of an open document run"}
    uri = open_doc(client, "tests/support_test.nhipl")
    bad = await client.workspace_execute_command_async(T.ExecuteCommandParams("nhipl.runTest", [uri, "rm -rf", "x", 1]))
    assert bad["passed"] is False and bad["detail"] == "bad arguments"
