"""The published JSON Schemas (`nhipl schema NAME`) agree with what the code accepts and writes."""

from __future__ import annotations

import functools
import json
import pathlib

import jsonschema
import pytest
from hypothesis import given, settings, strategies as st

import nhipl
from nhipl.errors import RequestError
from nhipl.request import FIELDS, parse_request
from nhipl.runtime.log import DecisionLog
from nhipl.schemas import NAMES, schema
from nhipl.simulator.trace import KINDS, check_event

from .cli import run

ROOT = pathlib.Path(__file__).parent.parent
EXAMPLES = ROOT / "examples"


@functools.cache
def _validator(name: str) -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(schema(name))


@pytest.mark.parametrize("name", NAMES)
def test_every_schema_is_a_valid_draft_2020_12_schema(name):
    jsonschema.Draft202012Validator.check_schema(schema(name))


@pytest.mark.parametrize("name", NAMES)
def test_the_cli_prints_the_shipped_schema(name):
    code, out, _ = run("schema", name)
    assert code == 0
    assert json.loads(out) == schema(name)


def test_the_cli_lists_the_names_and_refuses_an_unknown_one():
    code, out, _ = run("schema", "--list")
    assert code == 0 and out.split() == list(NAMES)
    code, _, err = run("schema", "requests")
    assert code == 2 and "requests" in err and "Traceback" not in err


# ---- request ---------------------------------------------------------------------------------


def _example_requests():
    for path in sorted(EXAMPLES.glob("*/requests/*.json*")):
        text = path.read_text()
        docs = [json.loads(line) for line in text.splitlines() if line.strip()] if path.suffix == ".jsonl" else [json.loads(text)]
        for doc in docs:
            yield pytest.param(doc, id=path.relative_to(EXAMPLES).as_posix())


@pytest.mark.parametrize("request_", list(_example_requests()))
def test_example_requests_validate(request_):
    _validator("request").validate(request_)


def test_the_schema_names_every_request_field():
    assert set(schema("request")["properties"]) == set(FIELDS)


_scalars = st.one_of(st.none(), st.booleans(), st.integers(-5, 5), st.floats(allow_nan=False, allow_infinity=False, width=32),
                     st.sampled_from(["", "x", "spiffe://acme.org/agents/a", "user", "tool:web.get"]))
_json = st.recursive(_scalars, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                       st.dictionaries(st.sampled_from(["a", "b", "id"]), inner, max_size=3)),
                     max_leaves=6)


_num = st.one_of(st.integers(-10, 10**6), st.floats(-1e6, 1e6, allow_nan=False))
_str = st.sampled_from(["", "a", "spiffe://acme.org/agents/a", "user", "tool:web.get"])
_obj = st.dictionaries(st.sampled_from(["a", "b", "id"]), _json, max_size=3)


def _opt(**fields):
    return st.fixed_dictionaries({}, optional=fields)


# A valid value per request field; the differential test then breaks one place at random.
_valid = {
    "principal": st.one_of(_str, st.builds(lambda i, rest: {"id": i, **rest}, _str,
                                           _opt(groups=st.lists(_str, max_size=2), max_credential_ttl=_num, owner=_str))),
    "action": _str,
    "tool": _str,
    "resource": _str,
    "args": _obj,
    "task": _opt(id=_str, intent=_str, owner=_str, extra=_json),
    "delegation": _opt(chain=st.lists(_str, max_size=3)),
    "credential": _opt(id=_str, issued_at=_num, ttl=_num, scope=_str),
    "approval": _opt(granted=st.booleans(), by=_str),
    "context": _obj,
    "provenance": st.dictionaries(st.sampled_from(["to", "body"]), _str, max_size=2),
    "now": _num,
}
_SUBKEYS = {"principal": ["id", "groups", "max_credential_ttl"], "task": ["id", "intent", "owner"], "delegation": ["chain"],
            "credential": ["id", "issued_at", "ttl", "age"], "approval": ["granted", "by"], "provenance": ["to"]}


_ONE_OF_EACH_TYPE = [None, True, 0, 1.5, "x", [], ["x"], [1], {}, {"id": "x"}]


@st.composite
def _requests(draw):
    raw = draw(st.fixed_dictionaries({"principal": _valid["principal"], "tool": _valid["tool"]},
                                     optional={k: v for k, v in _valid.items() if k not in ("principal", "tool")}))
    where = draw(st.sampled_from(["nothing", "root", "typo", *FIELDS, *(f"{f}.{k}" for f, ks in _SUBKEYS.items() for k in ks)]))
    value = draw(st.sampled_from(_ONE_OF_EACH_TYPE))
    if where == "root":
        return value
    if where == "typo":
        raw["principle"] = value
    elif "." in where:
        field, key = where.split(".")
        if isinstance(raw.get(field), dict):
            raw[field][key] = value
        else:
            raw[field] = {key: value} if field != "principal" else {"id": "a", key: value}
    elif where != "nothing":
        raw[where] = value
    return raw


@given(_requests())
def test_the_request_schema_accepts_exactly_what_the_evaluator_accepts(raw):
    assert _validator("request").is_valid(raw) == _accepted(raw), raw


def _accepted(raw) -> bool:
    try:
        parse_request(raw)
    except RequestError:
        return False
    return True


_FULL_REQUEST = {
    "principal": {"id": "a", "groups": ["g"], "max_credential_ttl": 60, "owner": "o"},
    "action": "call", "tool": "t", "resource": "r", "args": {"a": 1}, "task": {"id": "t1", "intent": "i", "owner": "o"},
    "delegation": {"chain": ["b"]}, "credential": {"id": "c", "issued_at": 1, "ttl": 5, "scope": "s"},
    "approval": {"granted": True, "by": "h"}, "context": {"env": "prod"}, "provenance": {"a": "user"}, "now": 2,
}


def test_the_request_schema_and_the_evaluator_agree_on_every_single_break():
    """Every field and sub-field of a full request set to a value of every JSON type."""
    import copy

    checked = 0
    for field in [None, *FIELDS, "principle"]:
        for key in [None, *_SUBKEYS.get(field, [])]:
            for value in _ONE_OF_EACH_TYPE:
                raw = copy.deepcopy(_FULL_REQUEST)
                if field is None:
                    raw = value
                elif key is None:
                    raw[field] = value
                else:
                    raw[field][key] = value
                assert _validator("request").is_valid(raw) == _accepted(raw), raw
                checked += 1
    assert checked >= 280


# ---- decision --------------------------------------------------------------------------------


@pytest.mark.parametrize("folder", sorted(p.name for p in EXAMPLES.iterdir() if (p / "requests").is_dir()))
def test_decisions_of_the_examples_validate(folder):
    code, out, _ = run("eval", "-p", str(EXAMPLES / folder), "-r", str(next((EXAMPLES / folder / "requests").iterdir())), "--format", "json")
    assert code == 0
    decision = json.loads(out)
    _validator("decision").validate(decision)
    policies = nhipl.load(str(EXAMPLES / folder))
    for path in sorted((EXAMPLES / folder / "requests").iterdir()):
        for line in path.read_text().splitlines() if path.suffix == ".jsonl" else [path.read_text()]:
            if line.strip():
                _validator("decision").validate(policies.evaluate(json.loads(line)).to_dict())


def test_the_decision_schema_refuses_an_unknown_effect():
    assert not _validator("decision").is_valid(
        {"effect": "permit", "rules": [], "credential_ttl": None, "errors": [], "reasons": [], "restricted_by": None}
    )


# ---- trace events ----------------------------------------------------------------------------


def test_the_trace_event_schema_lists_the_reader_s_kinds_and_fields():
    s = schema("trace-event")
    assert s["properties"]["kind"]["enum"] == list(KINDS)
    branches = {b["if"]["properties"]["kind"]["const"]: b["then"] for b in s["allOf"]}
    assert set(branches) == set(KINDS)
    for kind, (required, optional) in KINDS.items():
        assert set(branches[kind]["required"]) == {"kind", *required}, kind
        assert set(branches[kind]["properties"]) == {"kind", *required, *optional}, kind


_events = st.one_of(
    _json,
    st.fixed_dictionaries(
        {"kind": st.one_of(st.sampled_from(list(KINDS)), _json)},
        optional={name: st.one_of(_json, st.sampled_from(["s", 1.5, ["a"]])) for name in
                  {n for req, opt in KINDS.values() for n in (*req, *opt)}},
    ),
)


@given(_events)
def test_the_trace_event_schema_accepts_exactly_what_the_trace_reader_accepts(event):
    assert _validator("trace-event").is_valid(event) == (check_event(event) is None), event


def test_a_generated_trace_validates_line_by_line():
    code, out, _ = run("generate", "--agents", "4", "--tasks", "3", "--seed", "3")
    assert code == 0
    validator = _validator("trace-event")
    lines = out.splitlines()
    assert lines
    for line in lines:
        validator.validate(json.loads(line))


# ---- simulator report ------------------------------------------------------------------------


def test_the_simulator_report_validates(tmp_path):
    code, trace, _ = run("generate", "--agents", "4", "--tasks", "3", "--seed", "5", "--drift", "0.3", "--sharing", "0.3", "--late-use", "0.3")
    assert code == 0
    path = tmp_path / "t.jsonl"
    path.write_text(trace)
    code, out, _ = run("simulate", str(path), "-p", str(EXAMPLES / "support-triage"), "--format", "json")
    assert code == 0
    report = json.loads(out)
    assert report["findings"], "a report with findings exercises the finding schema"
    _validator("report").validate(report)
    report["findings"][0]["kind"] = "overreaching"
    assert not _validator("report").is_valid(report)


# ---- decision log ----------------------------------------------------------------------------


def test_decision_log_records_validate(tmp_path):
    policies = nhipl.loads('@id("r") permit any agent to call "t" grant ttl 5m;\n')
    path = tmp_path / "log.jsonl"
    with DecisionLog(str(path)) as log:
        log.record_task("task_start", {"id": "t1", "intent": "i"}, "a")
        for tool in ("t", "u"):
            request = {"principal": "a", "tool": tool, "args": {"token": "ghp_" + "x" * 36}, "task": {"id": "t1", "intent": "i"}}
            log.record_decision(request, policies.evaluate(request))
        log.record_task("task_end", {"id": "t1", "intent": "i"}, "a")
    validator = _validator("decision-log")
    records = [json.loads(line) for line in path.read_text().splitlines()]
    assert [r["event"] for r in records] == ["task_start", "decision", "decision", "task_end"]
    for record in records:
        validator.validate(record)
    records[1]["effect"] = "maybe"
    assert not validator.is_valid(records[1])


def test_a_runtime_log_validates_as_decision_log_records_and_as_trace_events(tmp_path):
    from nhipl.runtime import Runtime

    policies = nhipl.loads(
        '@id("r") permit any agent to call "t" grant ttl 5m;\n'
        '@id("d") permit any agent to delegate "spiffe://x/*";\n'
        '@id("g") require approval for any agent to call "t" when args.n == 2;\n'
    )
    path = tmp_path / "log.jsonl"
    rt = Runtime(policies, log=str(path))
    task = rt.start_task("spiffe://x/a", "i", prompt="use 1")
    task.check("spiffe://x/a", "t", {"n": 1, "token": "ghp_" + "x" * 36})
    task.record_output("t", {"n": 2})
    task.delegate("spiffe://x/a", "spiffe://x/b").check("t", {"n": 2})
    task.approve("t", by="alice", args={"n": 2}, ttl=60)
    rt.revoke(task.check("spiffe://x/a", "t", {"n": 2}).credential.id, "by hand")
    task.end()
    records = [json.loads(line) for line in path.read_text().splitlines()]
    assert {r["kind"] for r in records} == {"task_start", "tool_call", "tool_output", "delegate", "approval",
                                            "credential_issue", "credential_revoke", "task_end"}
    log_schema, trace_schema = _validator("decision-log"), _validator("trace-event")
    for record in records:
        log_schema.validate(record)
        trace_schema.validate(record)
        assert check_event(record) is None
    step = next(r for r in records if r["kind"] == "tool_call")
    step["effect"] = "maybe"
    assert not log_schema.is_valid(step)
