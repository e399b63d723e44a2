"""The language server's parts without the protocol: error recovery, the
incremental analysis held to the whole-file one, the lexer's roles, and the
tables that explain the language held to the language."""

from __future__ import annotations

import random
import re
from importlib import resources
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import nhipl
from nhipl.lsp import completion, navigation
from nhipl.lsp.analysis import analyse
from nhipl.lsp.incremental import DocumentAnalyser
from nhipl.lsp.language import KEYWORDS, PATHS
from nhipl.lsp.tokens import AGENT_DECL, AGENT_REF, GROUP, IMPORT, RULE_ID_DEF, RULE_ID_REF, TOOL_REF, item_bounds, string_role, tokenize
from nhipl.lsp.workspace import Workspace

ROOT = Path(__file__).parent.parent
POLICY_FILES = sorted(p for p in ROOT.rglob("*.nhipl") if not {".venv", "node_modules", ".git"} & set(p.parts))


def _key(problem):
    return (problem.code, problem.message, problem.span.line, problem.span.column)


def _variants(text: str, seed: int, count: int = 5) -> list[str]:
    rng = random.Random(seed)
    out = [text]
    for _ in range(count):
        i = rng.randrange(len(text) or 1)
        out.append(text[:i] + rng.choice(["=", ";", "", "}", '"', '@id("dup")\n', "permit ", "{"]) + text[i + 1 :])
    return out


@pytest.mark.parametrize("path", POLICY_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_incremental_analysis_agrees_with_loading_the_whole_file(path: Path):
    text = path.read_text()
    analyser = DocumentAnalyser(str(path))
    for n, variant in enumerate(_variants(text, seed=len(text))):
        quick, whole = analyser.analyse(variant), analyse(variant, str(path), lint=False)
        assert sorted(map(_key, quick.problems)) == sorted(map(_key, whole.problems)), f"variant {n}"
        if whole.policies is not None:
            assert sorted(r.id for r in quick.policies.rules) == sorted(r.id for r in whole.policies.rules), f"variant {n}"


def test_every_broken_item_gets_its_own_syntax_error():
    text = 'permit any agent to call "a" when x = 1;\nforbid any agent to call "b" when (;\npermit any agent to call "c" grant ttl 5m;\n'
    found = analyse(text, "/tmp/p.nhipl", lint=False)
    assert [(p.code, p.span.line) for p in found.problems] == [("syntax-error", 1), ("syntax-error", 2)]
    assert [r.targets for r in found.policies.rules] == [("c",)]


def test_a_problem_in_an_imported_file_is_shown_on_the_import(tmp_path: Path):
    (tmp_path / "common.nhipl").write_text("permit any agent to call;\n")
    text = 'import "./common.nhipl";\npermit any agent to call "a" grant ttl 5m;\n'
    found = analyse(text, str(tmp_path / "main.nhipl"), lint=False)
    problem = found.problems[0]
    assert (problem.span.line, problem.span.column) == (1, 1)
    assert problem.message.startswith(f"in `{tmp_path / 'common.nhipl'}`:")
    assert problem.related[0][0].source == str(tmp_path / "common.nhipl")
    assert [r.targets for r in found.policies.rules] == [("a",)]


def test_items_are_cut_where_a_statement_or_block_ends_or_a_new_one_starts():
    text = '@id("a")\npermit any agent to call "x"\n\nagent "s" { groups: ["g"] }\ntask "t" {\n  forbid any agent to call "y";\n}\nimport "z"\nimport "w";\n'
    items = [text[s:e].split()[0] for s, e in item_bounds(text)]
    assert items == ['@id("a")', "agent", "task", "import", "import"]


@pytest.mark.parametrize(
    "text, role",
    [
        ('@id("r")', RULE_ID_DEF),
        ('expect allow by "a", "r"', RULE_ID_REF),
        ('import "baseline" except "r"', RULE_ID_REF),
        ('import "r"', IMPORT),
        ('agent "r" {', AGENT_DECL),
        ('permit agent "a", "r" to', AGENT_REF),
        ('permit agent in "r" to', GROUP),
        ('permit any agent to call "a", "r"', TOOL_REF),
        ('request { principal: "r"', AGENT_REF),
        ('request { principal: "a", tool: "r"', TOOL_REF),
        ('because "r"', None),
    ],
)
def test_the_role_of_a_string(text: str, role: str | None):
    tokens = tokenize(text)
    last = max(i for i, t in enumerate(tokens) if t.kind == "string")
    assert string_role(tokens, last) == role


def test_every_keyword_of_the_grammar_is_explained():
    grammar = (resources.files("nhipl.grammar") / "nhipl.lark").read_text()
    words = set(re.findall(r"^_[A-Z_]+\.2: /([a-z_]+)\(\?!", grammar, re.M))
    words |= set(re.search(r"^STRTEST\.2: /\(([a-z|]+)\)", grammar, re.M).group(1).split("|"))
    assert words and words <= set(KEYWORDS), sorted(words - set(KEYWORDS))


def test_every_request_path_root_is_explained():
    with pytest.raises(nhipl.PolicyError) as err:
        nhipl.loads('permit any agent to call "x" when nosuch == 1;')
    roots = set(re.findall(r"`([a-z_]+)`", err.value.diagnostics[0].help))
    assert roots and roots == set(PATHS)
    for root in PATHS:
        nhipl.loads(f'permit any agent to call "x" when {root} == 1;')


@settings(max_examples=60, deadline=None)
@given(st.text(alphabet=st.sampled_from(list('permit forbid agent "a" to call ; { } ( ) . args has when @id , \n # 5m == in task test expect by')), max_size=120))
def test_hostile_text_never_breaks_the_analysis_or_the_features(text: str):
    path = "/tmp/hostile.nhipl"
    analysis = DocumentAnalyser(path).analyse(text)
    # the same problems as loading the whole text (a syntax error may read differently: the
    # item is parsed alone, so where the whole file shows the next item's first word, the
    # item alone ends)
    whole = analyse(text, path, lint=False)
    assert sorted(p.code for p in analysis.problems) == sorted(p.code for p in whole.problems)
    workspace = Workspace()
    workspace.set_open(path, text)
    for offset in range(len(text) + 1):
        navigation.hover(analysis, workspace, offset)
        navigation.definition(analysis, workspace, offset)
        navigation.references(analysis, workspace, offset)
        completion.complete(analysis, workspace, offset)


@pytest.mark.parametrize(
    "before, expected, unexpected",
    [
        ('@id("a")\n', "permit", "and"),
        ('@id("a")\npermit any agent to call "x" when (args.a == 1) ', "and", "permit"),
        ('permit agent "a" ', "to", "permit"),
        ('permit any agent to call "x" ', "grant ttl", "to"),
        ('task "t" {\n', "forbid", "agent"),
        ("test \"t\" {\n    request { principal: \"a\", tool: \"b\" }\n    expect ", "deny", "permit"),
        ('permit any agent to call "x" grant ', "ttl", "permit"),
    ],
)
def test_keywords_in_place(before: str, expected: str, unexpected: str):
    path = "/tmp/complete.nhipl"
    analysis = DocumentAnalyser(path).analyse(before)
    labels = [s.label for s in completion.complete(analysis, Workspace(), len(before))]
    assert expected in labels and unexpected not in labels, labels


def test_the_lint_worker_finds_what_the_linter_finds_in_process():
    import json
    import subprocess
    import sys

    from nhipl.lsp.analysis import lint_problems
    from nhipl.lsp.lint_worker import problem_from_dict

    path = str(ROOT / "examples" / "support-triage" / "policies.nhipl")
    text = Path(path).read_text() + '\npermit any agent to call "search.web";\n'
    done = subprocess.run(
        [sys.executable, "-m", "nhipl.lsp.lint_worker"], input=json.dumps({"path": path, "text": text}), capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    from_worker = [problem_from_dict(d) for d in json.loads(done.stdout)]
    in_process = lint_problems(DocumentAnalyser(path).analyse(text))
    assert from_worker == in_process and any(p.code == "NHI002" for p in from_worker)


@pytest.mark.parametrize(
    "text",
    [
        'tool "a" {\n  tags: ["x"]\n\npermit any agent to call "b";\npermit any agent to call "c";\n',
        'tool "a" {\n  tags: ["x"]\n\ntool "b" { tags: ["y"] }\n@id("c")\npermit any agent to call "c";\n',
        'task "t" {\n    permit any agent to call "a";\n\n@id("b")\npermit any agent to call "b";\n',
    ],
)
def test_a_block_never_closed_is_the_broken_item_not_every_item_after_it(text: str):
    quick, whole = DocumentAnalyser("doc.nhipl").analyse(text), analyse(text, "doc.nhipl", lint=False)
    assert sorted(map(_key, quick.problems)) == sorted(map(_key, whole.problems))
    assert len(whole.problems) == 1 and whole.problems[0].span.line == 2, whole.problems
    assert whole.policies is not None and len(whole.policies.rules) >= 1  # the items after it still load
