"""Quantifiers compile to one generated loop each (nhipl.loops): no text of the policy ever
reaches the generated source, and the loop decides as the reference interpreter does."""

from __future__ import annotations

import nhipl
from nhipl import interpret
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


def nhipl_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
