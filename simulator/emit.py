"""``nhipl simulate --emit-tests``: a policy test file pinning the decision behind each step
finding, to review and keep in CI.

One ``test`` block per trace line that has a finding on a step, with the request the replay
built for it and the decision the policies give it today (``expect EFFECT by "rule", ...``).
A test that expects ``allow`` for a step found as a revocation or attribution gap still belongs
in review: the policy allowed what the runtime should have stopped some other way.
"""

from __future__ import annotations

import json

from nhipl.fmt import format_module, parse_module


def _value(value: object) -> str:
    """A JSON value written in the policy language's value syntax (object keys quoted)."""
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{json.dumps(str(k), ensure_ascii=False)}: {_value(v)}" for k, v in value.items()) + " }"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return json.dumps(value, ensure_ascii=False)


def emit_tests(report, requests: dict[int, dict], policies, *, source: str = "trace", imports: tuple[str, ...] = ()) -> str:
    """The text of a ``*_test.nhipl`` file for ``report``'s step findings; ``requests`` maps a
    trace line to the request built for its step; ``imports`` are the policy files to import."""
    header = [f"# Emitted by `nhipl simulate --emit-tests` from {source}: one test per step with a finding,",
              "# expecting the decision the policies give it today. Review each before keeping it."]
    header += [f"import {json.dumps(path, ensure_ascii=False)};" for path in imports]
    if policies is None:
        return "\n".join(header + ["# No policy was given, so no step was decided and there is nothing to pin."]) + "\n"
    by_line: dict[int, list[str]] = {}
    for finding in report.findings:
        if finding.line is not None and finding.line in requests:
            by_line.setdefault(finding.line, []).append(f"{finding.kind}/{finding.subkind}" if finding.subkind else finding.kind)
    blocks = []
    for line in sorted(by_line):
        request = requests[line]
        decision = policies.evaluate(request)
        kinds = ", ".join(dict.fromkeys(by_line[line]))
        what = f"{request.get('action', 'call')} {request['tool']}"
        name = f"line {line}: {kinds}: {request['principal']} {what}"
        by = (" by " + ", ".join(json.dumps(r) for r in decision.rules)) if decision.rules else ""
        blocks.append(f"test {json.dumps(name, ensure_ascii=False)} {{\n    request {_value(request)}\n"
                      f"    expect {decision.effect}{by}\n}}")
    if not blocks:
        return "\n".join(header + ["# No step had a finding."]) + "\n"
    text = "\n".join(header) + "\n\n" + "\n\n".join(blocks) + "\n"
    return format_module(parse_module(text, "emitted_test.nhipl"), text)
