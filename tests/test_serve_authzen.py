"""The AuthZEN Authorization API 1.0 and nhipl's own endpoints, against a real `nhipl serve`
process: the request mapping, batch defaults and semantics, per-item errors, 400 naming the
field (fuzzed: never a 500), X-Request-ID, the metadata and operations endpoints."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .test_serve_process import POLICY as DOCS_POLICY
from .test_serve_process import Server, evaluation

POLICY = DOCS_POLICY + """
tool "deploy.*" { sensitive: true }

@id("ops-deploy")
permit agent in "ops" to call "deploy.run" on "env:*"
    when args has version and context.env == "staging";

@id("read-own-doc")
permit any agent to view "doc:*" when args has owner and args.owner == principal.id;

task "triage" {
    @id("triage-reads")
    permit any agent to call "zendesk.read";
}

@id("fresh-credential")
permit any agent to call "vault.read" when credential.age < 1m;
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("authzen")
    (folder / "policies.nhipl").write_text(POLICY)
    with Server([folder]) as srv:
        yield srv


def decide(server, body):
    status, headers, out = server.post("/access/v1/evaluation", body)
    assert status == 200, out
    return out


# -- mapping ---------------------------------------------------------------------------------


def test_allow_deny_and_approval_responses(server):
    allow = decide(server, evaluation(rid="docs.read"))
    assert allow == {
        "decision": True,
        "context": {
            "effect": "allow",
            "rules": ["read-docs"],
            "reasons": allow["context"]["reasons"],
            "errors": [],
            "credential_ttl": 300,
        },
    }
    deny = decide(server, evaluation(rid="docs.secret"))
    assert (deny["decision"], deny["context"]["effect"], deny["context"]["rules"]) == (False, "deny", ["no-secrets"])
    gate = decide(server, evaluation(rid="docs.delete"))
    assert gate["decision"] is False
    assert gate["context"]["effect"] == "approval_required"
    assert gate["context"]["access_request"]["rules"] == ["delete-needs-approval"]
    assert "deleting needs a human" in gate["context"]["access_request"]["reason"]
    approved = decide(server, evaluation(rid="docs.delete", context={"approval": {"granted": True, "by": "alice"}}))
    assert approved["decision"] is True


def test_a_tool_resource_maps_to_tool_args_and_resource_and_context_stays_context(server):
    body = evaluation(
        subject="spiffe://acme.org/agents/deployer",
        rid="deploy.run",
        properties={"args": {"version": "1.2"}, "resource": "env:staging"},
        context={"env": "staging"},
    )
    body["subject"]["properties"] = {"groups": ["ops"]}
    assert decide(server, body)["context"]["rules"] == ["ops-deploy"]
    body["context"] = {"env": "prod"}
    assert decide(server, body)["decision"] is False
    body["context"] = {"env": "staging"}
    body["subject"]["properties"] = {"groups": ["dev"]}
    assert decide(server, body)["decision"] is False
    body["subject"]["properties"] = {"groups": ["ops"]}
    body["resource"]["properties"]["resource"] = "prod-cluster"
    assert decide(server, body)["decision"] is False


def test_another_resource_type_is_a_typed_tool_with_its_properties_as_args(server):
    own = evaluation(subject="alice", action="view", rtype="doc", rid="42", properties={"owner": "alice"})
    assert decide(server, own)["context"]["rules"] == ["read-own-doc"]
    other = evaluation(subject="bob", action="view", rtype="doc", rid="42", properties={"owner": "alice"})
    assert decide(server, other)["decision"] is False


def test_request_fields_in_context_are_lifted(server):
    assert decide(server, evaluation(rid="zendesk.read"))["decision"] is False
    assert decide(server, evaluation(rid="zendesk.read", context={"task": {"intent": "triage"}}))["context"]["rules"] == ["triage-reads"]
    fresh = {"credential": {"id": "c", "issued_at": 1000, "ttl": 300}, "now": 1030}
    assert decide(server, evaluation(rid="vault.read", context=fresh))["decision"] is True
    stale = {"credential": {"id": "c", "issued_at": 1000, "ttl": 300}, "now": 1100}
    assert decide(server, evaluation(rid="vault.read", context=stale))["decision"] is False


def test_decide_answers_as_nhipl_eval_json_does(server, tmp_path):
    import nhipl

    request = {"principal": "a", "tool": "docs.delete"}
    status, headers, out = server.post("/v1/decide", request)
    assert status == 200
    assert out == nhipl.loads(POLICY).evaluate(request).to_dict()
    assert "x-nhipl-policy-version" in headers


# -- batches ---------------------------------------------------------------------------------


def batch(items, semantic=None, **defaults):
    body = {"subject": {"type": "agent", "id": "a"}, "action": {"name": "call"}, **defaults, "evaluations": items}
    if semantic:
        body["options"] = {"evaluations_semantic": semantic}
    return body


def tool(name):
    return {"resource": {"type": "tool", "id": name}}


def effects(server, body):
    status, _, out = server.post("/access/v1/evaluations", body)
    assert status == 200, out
    return [item["context"].get("effect", "error") for item in out["evaluations"]]


def test_top_level_fields_are_defaults_each_item_may_override(server):
    body = batch(
        [
            {},
            {"resource": {"type": "tool", "id": "docs.secret"}},
            {"subject": {"type": "agent", "id": "alice"}, "action": {"name": "view"}, "resource": {"type": "doc", "id": "1", "properties": {"owner": "alice"}}},
            {"context": {"task": {"intent": "triage"}}, "resource": {"type": "tool", "id": "zendesk.read"}},
        ],
        resource={"type": "tool", "id": "docs.read"},
    )
    assert effects(server, body) == ["allow", "deny", "allow", "allow"]


@pytest.mark.parametrize(
    "semantic, want",
    [
        (None, ["allow", "deny", "allow", "approval_required"]),
        ("execute_all", ["allow", "deny", "allow", "approval_required"]),
        ("deny_on_first_deny", ["allow", "deny"]),
        ("permit_on_first_permit", ["allow"]),
    ],
)
def test_each_semantic_truncates_where_it_should(server, semantic, want):
    items = [tool("docs.read"), tool("docs.secret"), tool("docs.list"), tool("docs.delete")]
    assert effects(server, batch(items, semantic)) == want


def test_permit_on_first_permit_stops_at_the_first_permit(server):
    items = [tool("docs.secret"), tool("docs.delete"), tool("docs.read"), tool("docs.list")]
    assert effects(server, batch(items, "permit_on_first_permit")) == ["deny", "approval_required", "allow"]


def test_deny_on_first_deny_counts_an_item_error_as_a_deny(server):
    items = [tool("docs.read"), {"resource": {"type": "tool"}}, tool("docs.list")]
    assert effects(server, batch(items, "deny_on_first_deny")) == ["allow", "error"]


def test_an_item_error_stays_in_that_item(server):
    items = [
        tool("docs.read"),
        {"resource": {"type": "tool", "id": 7}},
        {"resource": {"type": "tool", "id": "docs.read"}, "context": {"now": "soon"}},
        {"resource": {"type": "tool", "id": "docs.read", "properties": {"args": []}}},
        tool("docs.secret"),
    ]
    status, _, out = server.post("/access/v1/evaluations", batch(items))
    assert status == 200
    got = out["evaluations"]
    assert [g["decision"] for g in got] == [True, False, False, False, False]
    assert got[1]["context"]["error"]["field"] == "evaluations[1].resource.id"
    assert got[2]["context"]["error"]["field"] == "evaluations[2].context.now"
    assert got[3]["context"]["error"]["field"] == "evaluations[3].resource.properties.args"
    assert got[4]["context"]["effect"] == "deny"


def test_a_batch_without_evaluations_is_one_evaluation(server):
    status, _, out = server.post("/access/v1/evaluations", evaluation(rid="docs.read"))
    assert status == 200
    assert out["decision"] is True


# -- malformed bodies ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path, body, field",
    [
        ("/access/v1/evaluation", b"{not json", "body"),
        ("/access/v1/evaluation", b"\xff\xfe", "body"),
        ("/access/v1/evaluation", b'{"a": NaN}', "body"),
        ("/access/v1/evaluation", b"[" * 100000 + b"]" * 100000, "body"),
        ("/access/v1/evaluation", [], ""),
        ("/access/v1/evaluation", {"action": {"name": "call"}, "resource": {"type": "tool", "id": "x"}}, "subject"),
        ("/access/v1/evaluation", {**evaluation(), "subject": "a"}, "subject"),
        ("/access/v1/evaluation", {**evaluation(), "subject": {"type": "agent"}}, "subject.id"),
        ("/access/v1/evaluation", {**evaluation(), "subject": {"type": "agent", "id": ""}}, "subject.id"),
        ("/access/v1/evaluation", {**evaluation(), "subject": {"type": "agent", "id": "a", "properties": []}}, "subject.properties"),
        ("/access/v1/evaluation", {**evaluation(), "subject": {"type": "agent", "id": "a", "properties": {"groups": "ops"}}}, "subject.properties.groups"),
        ("/access/v1/evaluation", {**evaluation(), "action": {"nam": "call"}}, "action.nam"),
        ("/access/v1/evaluation", {**evaluation(), "action": {"name": 3}}, "action.name"),
        ("/access/v1/evaluation", {**evaluation(), "resource": {"type": "tool", "id": "x", "properties": {"arg": {}}}}, "resource.properties.arg"),
        ("/access/v1/evaluation", {**evaluation(), "resource": {"type": "tool", "id": "x", "properties": {"resource": 1}}}, "resource.properties.resource"),
        ("/access/v1/evaluation", {**evaluation(), "context": []}, "context"),
        ("/access/v1/evaluation", {**evaluation(), "context": {"task": "x"}}, "context.task"),
        ("/access/v1/evaluation", {**evaluation(), "context": {"delegation": {"chain": "a"}}}, "context.delegation.chain"),
        ("/access/v1/evaluation", {**evaluation(), "extra": 1}, "extra"),
        ("/access/v1/evaluations", {"evaluations": {}}, "evaluations"),
        ("/access/v1/evaluations", {"evaluations": [1]}, "evaluations[0]"),
        ("/access/v1/evaluations", {"evaluations": [], "options": {"evaluations_semantic": "first"}}, "options.evaluations_semantic"),
        ("/access/v1/evaluations", {"evaluations": [], "options": []}, "options"),
        ("/access/v1/evaluations", {"subject": 1, "evaluations": []}, "subject"),
        ("/v1/decide", {"principal": "a"}, "tool"),
        ("/v1/decide", {"principal": "a", "tool": "x", "args": 1}, "args"),
        ("/v1/decide", b"", "body"),
    ],
)
def test_a_malformed_body_is_400_naming_the_field(server, path, body, field):
    status, _, out = server.post(path, body)
    assert status == 400, out
    assert out["field"] == field
    assert isinstance(out["error"], str) and out["error"]
    if field not in ("", "body"):
        assert f"`{field}`" in out["error"] or field.rpartition(".")[2] in out["error"]


# strings of any code point, and lone surrogates (sent escaped: `"\ud800"`)
TEXT = st.text(max_size=8) | st.text(st.characters(exclude_categories=()), max_size=3) | st.text(st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF), min_size=1, max_size=2)
JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False, allow_infinity=False) | TEXT,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(TEXT, children, max_size=3),
    max_leaves=12,
)
KEYS = st.sampled_from(["subject", "action", "resource", "context", "evaluations", "options", "type", "id", "name", "properties", "args", "task", "now", "evaluations_semantic", "principal", "tool"])


def _mutate(value, data):
    """``value`` with a random part replaced by random JSON, or a known key set to it."""
    if isinstance(value, dict) and value and data.draw(st.booleans()):
        key = data.draw(st.sampled_from(sorted(value)))
        return {**value, key: _mutate(value[key], data)}
    if isinstance(value, list) and value and data.draw(st.booleans()):
        i = data.draw(st.integers(0, len(value) - 1))
        return value[:i] + [_mutate(value[i], data)] + value[i + 1 :]
    if isinstance(value, dict) and data.draw(st.booleans()):
        return {**value, data.draw(KEYS): data.draw(JSON)}
    return data.draw(JSON)


SEEDS = [
    ("/access/v1/evaluation", evaluation(properties={"args": {"a": 1}, "resource": "r"}, context={"task": {"intent": "x"}, "env": "e"})),
    ("/access/v1/evaluations", batch([tool("docs.read"), {"context": {"now": 1}}], "deny_on_first_deny", resource={"type": "doc", "id": "1"})),
    ("/v1/decide", {"principal": {"id": "a", "groups": ["g"]}, "tool": "t", "args": {}, "delegation": {"chain": ["b"]}, "history": []}),
    # the task-session endpoints (the task `fuzz` is started by the test)
    ("/v1/tasks", {"agent": "a", "intent": "x", "prompt": "p", "owner": "o"}),
    ("/v1/tasks/fuzz/steps", {"agent": "a", "tool": "docs.read", "args": {"a": [1]}, "resource": "r", "context": {"env": "e"}}),
    ("/v1/tasks/fuzz/delegations", {"agent": "a", "to": "b"}),
    ("/v1/tasks/fuzz/outputs", {"tool": "docs.read", "output": {"text": "t"}}),
    ("/v1/tasks/fuzz/approvals", {"tool": "docs.delete", "by": "h", "args": {}, "ttl": 60, "uses": 2}),
    ("/v1/credentials/introspect", {"token": "a.b.c", "tool": "t", "resource": "r"}),
    ("/v1/credentials/revoke", {"token": "a.b.c", "reason": "r"}),
]


@settings(max_examples=150, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow], deadline=None)
@given(data=st.data())
def test_fuzzed_bodies_get_200_or_400_naming_a_field_never_500(server, data):
    path, seed = data.draw(st.sampled_from(SEEDS))
    if "/fuzz/" in path:
        assert server.post("/v1/tasks", {"agent": "a", "task_id": "fuzz"})[0] in (201, 409)
    body = _mutate(seed, data)
    status, _, out = server.post(path, json.dumps(body).encode())
    assert status in ((200, 201, 400, 409) if path.startswith("/v1/tasks") else (200, 400)), (status, out)
    if status in (400, 409):
        assert isinstance(out["field"], str) and isinstance(out["error"], str) and out["error"]
    elif path.startswith(("/v1/tasks", "/v1/credentials")):
        assert isinstance(out, dict) and out
    elif path == "/access/v1/evaluations" and "evaluations" in out:
        for item in out["evaluations"]:
            assert isinstance(item["decision"], bool)
            assert "effect" in item["context"] or "field" in item["context"]["error"]
    else:
        assert isinstance(out.get("decision", out.get("effect")), (bool, str))


# -- headers and operations -------------------------------------------------------------------


def test_x_request_id_is_echoed_or_made(server):
    for path, body in [("/access/v1/evaluation", evaluation()), ("/access/v1/evaluation", b"{"), ("/nowhere", None)]:
        status, headers, _ = server.post(path, body, headers={"X-Request-ID": "req-1234"})
        assert headers["x-request-id"] == "req-1234", (path, status)
    _, headers, _ = server.post("/access/v1/evaluation", evaluation())
    assert len(headers["x-request-id"]) == 32


def test_unknown_paths_and_methods(server):
    assert server.request("GET", "/access/v1/evaluation")[0] == 405
    assert server.request("GET", "/access/v1/evaluation")[1]["allow"] == "POST"
    assert server.request("POST", "/healthz")[0] == 405
    assert server.request("GET", "/nope")[0] == 404


def test_metadata_names_the_endpoints(server):
    status, _, out = server.request("GET", "/.well-known/authzen-configuration")
    assert status == 200
    base = f"http://127.0.0.1:{server.port}"
    assert out == {
        "policy_decision_point": base,
        "access_evaluation_endpoint": base + "/access/v1/evaluation",
        "access_evaluations_endpoint": base + "/access/v1/evaluations",
    }


def test_health_readiness_and_metrics(server):
    assert server.request("GET", "/healthz")[:3:2] == (200, {"status": "ok"})
    status, headers, ready = server.request("GET", "/readyz")
    assert status == 200 and ready["status"] == "ready"
    assert ready["policy_version"] == headers["x-nhipl-policy-version"]
    before = server.request("GET", "/metrics")[2]
    decide(server, evaluation(rid="docs.secret"))
    server.post("/access/v1/evaluations", batch([tool("docs.read"), tool("docs.delete"), {"resource": 1}]))
    status, headers, text = server.request("GET", "/metrics")
    assert status == 200 and headers["content-type"].startswith("text/plain")

    def count(metrics, name, label):
        for line in metrics.splitlines():
            if line.startswith(name + "{") and label in line:
                return float(line.rsplit(" ", 1)[1])
        return 0.0

    assert count(text, "nhipl_decisions_total", 'effect="deny"') == count(before, "nhipl_decisions_total", 'effect="deny"') + 1
    assert count(text, "nhipl_decisions_total", 'effect="allow"') == count(before, "nhipl_decisions_total", 'effect="allow"') + 1
    assert count(text, "nhipl_decisions_total", 'effect="approval_required"') == count(before, "nhipl_decisions_total", 'effect="approval_required"') + 1
    assert count(text, "nhipl_decisions_total", 'effect="error"') == count(before, "nhipl_decisions_total", 'effect="error"') + 1
    assert count(text, "nhipl_decision_seconds_count", "") == count(before, "nhipl_decision_seconds_count", "") + 2
    assert count(text, "nhipl_decision_seconds_bucket", 'le="+Inf"') == count(text, "nhipl_decision_seconds_count", "")
    assert 'nhipl_reloads_total{result="ok"' in text and 'nhipl_reloads_total{result="failed"' in text
    assert all(line.startswith(("#", "nhipl_")) for line in text.splitlines())


# -- the mapping in-process ------------------------------------------------------------------

NAMES = st.text(min_size=0, max_size=4)
SHAPED = st.fixed_dictionaries(
    {
        "subject": st.fixed_dictionaries({"type": NAMES, "id": NAMES}, optional={"properties": st.none() | st.dictionaries(NAMES, JSON, max_size=2), "extra": JSON}),
        "action": st.fixed_dictionaries({"name": NAMES | JSON}, optional={"properties": JSON}),
        "resource": st.fixed_dictionaries(
            {"type": st.sampled_from(["tool", "todo", ""]) | NAMES, "id": NAMES | JSON},
            optional={"properties": st.none() | st.dictionaries(st.sampled_from(["args", "resource", "owner"]), JSON, max_size=2)},
        ),
    },
    optional={"context": st.none() | st.dictionaries(st.sampled_from(["env", "task", "now", "x"]), JSON, max_size=2), "other": JSON},
)


@given(SHAPED)
def test_the_quick_mapping_agrees_with_the_careful_one(body):
    from nhipl.serve import authzen

    try:
        careful = authzen.careful_request(body)
    except authzen.BadBody as err:
        careful = ("error", err.field)
    try:
        quick = authzen.to_request(body)
    except authzen.BadBody as err:
        quick = ("error", err.field)
    assert quick == careful


@pytest.mark.parametrize(
    "path, text",
    [
        ("/access/v1/evaluation", '{"subject": {"type": "a", "id": "a", "properties": {"max_credential_ttl": 1e400}}, "action": {"name": "call"}, "resource": {"type": "tool", "id": "docs.read"}}'),
        ("/v1/decide", '{"principal": "a", "tool": "docs.read", "now": -1e999}'),
        ("/v1/decide", '{"principal": "a", "tool": "docs.read", "args": {"n": ' + "1" * 5000 + "}}"),
    ],
)
def test_numbers_json_cannot_carry_are_400(server, path, text):
    status, _, out = server.post(path, text.encode())
    assert status == 400, out
    assert out["field"] == "body"


@pytest.mark.parametrize("depth", [50, 500, 990])
def test_deep_nesting_is_never_a_500(server, depth):
    nested = "[" * depth + "]" * depth
    text = '{"principal": "a", "tool": "docs.read", "context": {"x": ' + nested + '}, "task": {"intent": ' + nested + "}}"
    status, _, out = server.post("/v1/decide", text.encode())
    assert status in (200, 400), out
    body = json.dumps(evaluation(context={"x": json.loads(nested) if depth < 900 else []})).encode()
    assert server.post("/access/v1/evaluations", body)[0] in (200, 400)


def _reference_batch(body):
    """What :func:`authzen.batch` answers, computed item by item through the careful mapping
    only (each item's fields over the batch's defaults)."""
    from nhipl.serve import authzen

    items = []
    for index, item in enumerate(body["evaluations"]):
        prefix = f"evaluations[{index}]"
        merged = {key: item.get(key) if item.get(key) is not None else body.get(key) for key in ("subject", "action", "resource", "context")}
        try:
            authzen._no_unknown(item, ("subject", "action", "resource", "context"), prefix)
            items.append((authzen.careful_request(merged, prefix), None, authzen.is_tool(merged)))
        except authzen.BadBody as err:
            items.append((None, err.field, False))
    return items


_WORD = st.text(min_size=1, max_size=3)
WELL_FORMED = st.fixed_dictionaries(
    {
        "subject": st.fixed_dictionaries({"type": _WORD, "id": _WORD}, optional={"properties": st.dictionaries(_WORD, JSON, max_size=2)}),
        "action": st.fixed_dictionaries({"name": _WORD}),
        "resource": st.fixed_dictionaries({"type": st.sampled_from(["todo", "doc", "tool"]), "id": _WORD}, optional={"properties": st.dictionaries(_WORD, JSON, max_size=2)}),
    },
    optional={"context": st.dictionaries(st.sampled_from(["env", "x", "now"]), JSON, max_size=2)},
)
EVALUATION = WELL_FORMED | SHAPED


@given(
    st.fixed_dictionaries(
        {"evaluations": st.lists(EVALUATION, max_size=4)},
        optional={"subject": EVALUATION.map(lambda b: b["subject"]), "action": EVALUATION.map(lambda b: b["action"]),
                  "context": st.none() | st.dictionaries(st.sampled_from(["env", "x"]), JSON, max_size=2)},
    ),
    st.data(),
)
def test_a_batchs_quick_path_maps_each_item_as_the_careful_one(body, data):
    from nhipl.serve import authzen

    for item in body["evaluations"]:  # some items leave a field to the batch's default
        for key in data.draw(st.lists(st.sampled_from(["subject", "action", "context"]), max_size=2, unique=True)):
            item.pop(key, None)
    got, _ = authzen.batch(body)  # every item is an object: the body as a whole is well formed
    want = _reference_batch(body)
    assert [(r, b.field if b is not None else None, t) for r, b, t in got] == want


def _canonical(value):
    """A JSON value with its number types kept apart (``1`` is not ``1.0``)."""
    return json.dumps(value, sort_keys=True, ensure_ascii=True, allow_nan=True, default=repr)


# JSON texts near every edge the two decoders could read apart: integers around and beyond
# 64 bits, decimals at the float range's end, NaN and the infinities, surrogates, a byte order
# mark, control characters, duplicate keys, deep nesting, invalid UTF-8.
_EDGE_TOKENS = st.sampled_from([
    "0", "-0", "-0.0", "1e308", "1e309", "-1e400", "1E2", "9223372036854775807", "9223372036854775808",
    "-9223372036854775808", "-9223372036854775809", "18446744073709551615", "18446744073709551616",
    "1" * 40, "1." + "1" * 30, "NaN", "Infinity", "-Infinity", '"\\ud800"', '"\\udc00\\ud800"', '"\\ud83d\\ude00"',
    '"\\u0000"', '"\x01"', '"\xe9"', "true", "null", "[]", "{}", '{"a": 1, "a": 2}', "[" * 30 + "]" * 30,
])


@given(st.lists(_EDGE_TOKENS, min_size=1, max_size=4), st.sampled_from(["list", "object", "bare"]), st.sampled_from([b"", b"\xef\xbb\xbf", b" ", b"\xff"]))
def test_the_fast_body_decoder_reads_exactly_what_the_strict_one_reads(tokens, shape, prefix):
    from nhipl import jsontext
    from nhipl.serve import authzen
    from nhipl.serve.app import parse_body

    text = {"list": "[" + ", ".join(tokens) + "]", "object": "{" + ", ".join(f'"k{i}": {t}' for i, t in enumerate(tokens)) + "}", "bare": tokens[0]}[shape]
    raw = prefix + text.encode("utf-8", "surrogatepass")
    try:
        want = _canonical(jsontext.loads(raw))
    except (ValueError, RecursionError):  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        want = "refused"
    try:
        got = _canonical(parse_body(raw))
    except authzen.BadBody as err:
        assert err.field == "body"
        got = "refused"
    assert got == want, (raw, got, want)


@pytest.mark.parametrize(
    "path, text",
    [
        ("/access/v1/evaluation", '{"subject": {"type": "user", "id": "\\ud800"}, "action": {"name": "call"}, "resource": {"type": "tool", "id": "docs.read"}}'),
        ("/access/v1/evaluations", '{"evaluations": [{"subject": {"type": "user", "id": "a"}, "action": {"name": "\\udc00"}, "resource": {"type": "tool", "id": "docs.read"}}]}'),
        ("/v1/decide", '{"principal": "a", "tool": "docs.read", "args": {"\\ud800": 1}}'),
    ],
)
def test_a_lone_surrogate_is_a_400_not_an_answer_that_cannot_be_written(server, path, text):
    status, _, out = server.post(path, text.encode())
    assert status == 400, out
    assert out["field"] == "body" and "surrogate" in out["error"]
