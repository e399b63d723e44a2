"""Hostile JSON and policy text through every command that reads them: whatever the input,
the command exits 0, 1 or 2 with a clean message, never a traceback, and leaves no
temporary file behind. The number of examples is the Hypothesis profile's."""

from __future__ import annotations

import json
import os
import tempfile

import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

from nhipl.cli import main
from nhipl.request import FIELDS
from nhipl.simulator.trace import KIND_NAMES

POLICY = '@id("p") permit any agent to call "*" grant ttl 5m;\n@id("f") forbid any agent to call "x" when args.n >= 10;\n'

# Numbers and strings that broke readers before: non-finite, huge, lone surrogates,
# Unicode line separators, and deep nesting.
HOSTILE_TOKENS = [
    "NaN", "Infinity", "-Infinity", "1e400", "-1e400", "9" * 400, "9" * 5000, "1" + "0" * 300,
    '"\\ud800"', '"\\udfff x"', '"\\ud83d\\ude00"', '"a\u2028b"', '"a\u2029b"', '"a\u0085b"', '"\\u0000"',
    "[" * 3000 + "]" * 3000, '{"a":' * 2000 + "1" + "}" * 2000, "true", "null", '""', "-0", "1.5e-400",
]

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(10**20), 10**20), st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=12),
)
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                       st.dictionaries(st.text(max_size=8), inner, max_size=4)),
                      max_leaves=12)


def _render(value: object) -> str:
    return json.dumps(value, ensure_ascii=False)


@st.composite
def hostile_json(draw, keys: list[str]) -> str:
    """A JSON document (or JSON lines) shaped like the input the command expects, with
    hostile tokens spliced into its values, or plain junk."""
    kind = draw(st.sampled_from(["shaped", "spliced", "junk"]))
    if kind == "junk":
        return draw(st.one_of(st.text(max_size=60), st.sampled_from(HOSTILE_TOKENS)))
    lines = []
    for _ in range(draw(st.integers(1, 3))):
        record = draw(st.dictionaries(st.sampled_from(keys), values, min_size=1, max_size=len(keys)))
        text = _render(record)
        if kind == "spliced":
            key = draw(st.sampled_from(sorted(record)))
            token = draw(st.sampled_from(HOSTILE_TOKENS))
            nested = draw(st.booleans())  # at the top, or inside an object (as tool arguments are)
            text = _render({**record, key: {"n": "@@"} if nested else "@@"}).replace('"@@"', token, 1)
        lines.append(text)
    return "\n".join(lines) + draw(st.sampled_from(["", "\n", "\n\n", "\r\n"]))


REQUEST = hostile_json(list(FIELDS) + ["principal", "tool", "tool", "args"])
EVENT = hostile_json(["kind", "t", "agent", "tool", "task", "args", "to", "credential", "ttl", "intent",
                      "granted", "by", "output"] + list(KIND_NAMES))
RUN = hostile_json(["messages", "resourceSpans", "history", "v", "event", "t", "agent", "tool", "task", "action",
                    "effect", "args", "role", "content", "scopeSpans", "spans"])


def _invoke(folder: str, args: list[str]):
    before = set(os.listdir(folder))
    result = CliRunner().invoke(main, args, catch_exceptions=True)
    output = result.output + (result.stderr if result.stderr_bytes is not None else "")
    assert result.exception is None or isinstance(result.exception, SystemExit), (args, output, result.exception)
    assert result.exit_code in (0, 1, 2), (args, result.exit_code, output)
    assert "Traceback" not in output, output
    left = [n for n in set(os.listdir(folder)) - before if n.endswith(".tmp")]
    assert not left, left
    return result


def _with_files(files: dict[str, str], make_args) -> None:
    with tempfile.TemporaryDirectory() as folder:
        paths = {}
        for name, text in files.items():
            path = os.path.join(folder, name)
            with open(path, "w", encoding="utf-8", errors="surrogatepass") as fh:
                fh.write(text)
            paths[name] = path
        _invoke(folder, make_args(folder, paths))


@given(REQUEST)
def test_eval(text):
    _with_files({"p.nhipl": POLICY, "r.json": text},
                lambda d, p: ["eval", "-p", p["p.nhipl"], "-r", p["r.json"], "--format", "json"])


@given(EVENT)
def test_simulate(text):
    _with_files({"p.nhipl": POLICY, "t.jsonl": text},
                lambda d, p: ["simulate", p["t.jsonl"], "-p", p["p.nhipl"], "--format", "json",
                              "--out", os.path.join(d, "out")])


@given(EVENT)
def test_graph(text):
    _with_files({"t.jsonl": text}, lambda d, p: ["graph", p["t.jsonl"], "-o", os.path.join(d, "g.dot")])


@pytest.mark.parametrize("fmt", ["otel", "agentdojo", "whowhen", "decisions"])
@given(text=RUN)
def test_import(fmt, text):
    _with_files({"run.json": text}, lambda d, p: ["import", fmt, p["run.json"], "-o", os.path.join(d, "trace.jsonl")])


# Policy text: a valid policy with hostile literals and names spliced in, or junk.
policy_literals = st.sampled_from(HOSTILE_TOKENS + ["10", "1.5", '"ｄｅｌｅｔｅ"', '"x"', "5m", "9" * 400 + "s"])


@st.composite
def hostile_policy(draw) -> str:
    literal = draw(policy_literals)
    name = draw(st.sampled_from(['"x"', '"\\ud800"', '"a\u2028b"', '"Delete_File"', '"*"', '"' + "9" * 50 + '"']))
    text = (f'@id("a") permit any agent to call {name} when args.n > {literal} grant ttl 5m;\n'
            f'@id("b") forbid any agent to call "delete_file" when args.m == {draw(policy_literals)};\n'
            f'test {name} {{ request {{ principal: "spiffe://a/b", tool: "x", now: {literal} }} expect allow }}\n')
    if draw(st.booleans()):
        text += draw(st.text(max_size=30))
    return text


@pytest.mark.parametrize("command", [["check"], ["lint"], ["fmt", "--check"], ["test", "--no-invariants"]])
@given(text=hostile_policy())
def test_policy_commands(command, text):
    _with_files({"p_test.nhipl": text}, lambda d, p: [*command, p["p_test.nhipl"]])
