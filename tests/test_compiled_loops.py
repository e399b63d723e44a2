"""Quantifiers compile to one generated loop each (nhipl.loops): no text of the policy ever
reaches the generated source, and the loop decides as the reference interpreter does."""

from __future__ import annotations

import pytest

import nhipl
from nhipl import interpret, loops
from nhipl.conditions import compile_expr

HOSTILE = '"); import os; os.system("x") #'


def _strings_in_code(code) -> set[str]:
    found = {c for c in code.co_consts if isinstance(c, str)}
    for const in code.co_consts:
        if hasattr(const, "co_consts"):
            found |= _strings_in_code(const)
    return found


def test_no_policy_text_reaches_the_generated_source():
    text = (
        '@id("p") permit any agent to call "x" when any(h in history where h.tool == '
        + nhipl_string(HOSTILE)
        + " and h.args.os startswith "
        + nhipl_string(HOSTILE)
        + ");"
    )
    policies = nhipl.loads(text)
    loop = compile_expr(policies.rules[0].when)
    assert loop.__code__.co_filename == "<nhipl quantifier>"
    strings = _strings_in_code(loop.__code__)
    assert not any("os" in s or "import" in s for s in strings), strings
    steps = [{"tool": "a", "args": {"os": "b"}}, {"tool": HOSTILE, "args": {"os": HOSTILE + "!"}}]
    request = {"principal": "s", "tool": "x", "history": steps}
    assert policies.evaluate(request).effect == interpret.evaluate(policies, request).effect == "allow"


def test_the_loop_reports_the_interpreters_errors():
    policies = nhipl.loads('@id("p") forbid any agent to call "x" when count(h in history where h.args.n > 1) > 0;')
    for steps in ([{"args": {"n": "2"}}], [{"args": []}], [{"t": 1}], [{"args": {"n": True}}]):
        request = {"principal": "s", "tool": "x", "history": steps}
        assert policies.evaluate(request).errors == interpret.evaluate(policies, request).errors != ()


class Tag(str):
    """A string of another class: not a string to a condition, whatever its text."""


@pytest.mark.parametrize("test", ['matches "vault.*"', 'matches "*.read"', 'startswith "vault."',
                                  'endswith ".read"', 'contains "ult"'])
def test_a_remembered_answer_is_the_interpreter_s(test):
    """A string test against a literal remembers its answers per string; the answer for each
    step, an error for a value that is not a string (even one equal to a remembered string),
    and strings too long to remember or past the memory's size, all as the interpreter says."""
    policies = nhipl.loads(f'@id("p") forbid any agent to call "x" when count(h in history where h.tool {test}) >= 2;'
                           '@id("ok") permit any agent to call "x";')
    tools = ["vault.read", "vault.write", "files.read", "web.get", "vault.read", "x" * 300 + ".read",
             "vault." + "y" * 300, *(f"t{i}" for i in range(loops._MEMO_SIZE + 10)), "vault.read"]
    histories = [[{"tool": tool}] for tool in tools] + [[{"tool": a}, {"tool": b}] for a, b in zip(tools, tools[1:8])]
    histories += [[{"tool": "vault.read"}, {"tool": Tag("vault.read")}], [{"tool": Tag("files.read")}], [{"tool": 3}],
                  [{"tool": ["vault.read"]}], [{"tool": None}]]
    for history in histories:
        for _ in range(2):  # the second time, from memory
            request = {"principal": "s", "tool": "x", "history": history}
            fast, slow = policies.evaluate(request), interpret.evaluate(policies, request)
            assert (fast.effect, fast.rules, fast.errors) == (slow.effect, slow.rules, slow.errors), history


def nhipl_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
