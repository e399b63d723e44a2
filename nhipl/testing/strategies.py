"""Hypothesis strategies: requests built from a policy's vocabulary, and policy sets.

>>> import nhipl
>>> from hypothesis import given
>>> from nhipl.testing import requests
>>> policies = nhipl.loads('permit agent in "ops" to call "deploy.*" when args.env != "prod";')
>>> @given(requests(policies, tools=["deploy.*"]))
... def test_prod_never_allowed(request):
...     if request.get("args", {}).get("env") == "prod":
...         assert policies.evaluate(request).effect != "allow"

Every request the strategy draws is valid (``parse_request`` accepts it) and
shrinks toward the smallest one: a principal id as a plain string, no optional
fields, the first name of each list.
"""

from __future__ import annotations

from typing import Iterable

from hypothesis import strategies as st

from .. import ast as A
from .vocabulary import Vocabulary, instantiate, type_ok

# Generic values for an attribute that conditions read without a literal.
_GENERIC = ("x", 0, True)


def requests(
    policies,
    *,
    actions: Iterable[str] | None = None,
    tools: Iterable[str] | None = None,
    principals: Iterable[str] | None = None,
    resources: Iterable[str] | None = None,
    vocabulary: Vocabulary | None = None,
) -> st.SearchStrategy[dict]:
    """Requests (plain dicts, DESIGN §1) drawn from the vocabulary of ``policies``.

    ``actions``, ``tools``, ``principals`` and ``resources`` narrow the draw: each
    is a list of names or globs; a glob stands for an instance of itself and every
    vocabulary name it matches. ``resources`` makes the resource field required.
    """
    vocab = vocabulary or Vocabulary.of(policies)
    action_list = list(actions) if actions is not None else list(vocab.actions)
    if not action_list:
        raise ValueError("requests() needs at least one action")
    tool_globs = tuple(tools) if tools is not None else None
    principal_ids = (
        vocab.matching(vocab.principals, tuple(principals)) if principals is not None else list(vocab.principals)
    )
    resource_names = vocab.matching(vocab.resources, tuple(resources)) if resources is not None else None

    def tool_names(action: str) -> list[str]:
        names = vocab.tools_for(action)
        return vocab.matching(names, tool_globs) if tool_globs is not None else names

    by_action = {a: st.sampled_from(tool_names(a)) for a in action_list}
    return _request(
        st.sampled_from(action_list),
        by_action,
        _principal(vocab, principal_ids),
        _optional_fields(vocab, principal_ids, resource_names is None),
        st.sampled_from(resource_names) if resource_names else None,
    )


@st.composite
def _request(draw, action_st, tools_by_action, principal_st, optional_st, resource_st) -> dict:
    action = draw(action_st)
    request: dict = {"principal": draw(principal_st), "tool": draw(tools_by_action[action])}
    if action != "call":
        request["action"] = action
    if resource_st is not None:
        request["resource"] = draw(resource_st)
    request.update(draw(optional_st))
    # `age` is derived from `now - issued_at`; `now` must be there for it.
    credential = request.get("credential")
    if credential and "issued_at" in credential and "now" not in request:
        request["now"] = credential["issued_at"]
    return request


def _principal(vocab: Vocabulary, ids: list[str]) -> st.SearchStrategy:
    ids_st = st.sampled_from(ids)
    optional: dict[str, st.SearchStrategy] = {}
    if vocab.groups:
        optional["groups"] = st.lists(st.sampled_from(vocab.groups), unique=True, max_size=3)
    for path, values in _attrs_under(vocab, "principal").items():
        optional[path] = values
    if not optional:
        return ids_st
    as_object = st.builds(lambda pid, attrs: {"id": pid, **attrs}, ids_st, st.fixed_dictionaries({}, optional=optional))
    return st.one_of(ids_st, as_object)


def _attrs_under(vocab: Vocabulary, root: str) -> dict[str, st.SearchStrategy]:
    """A strategy per first-level attribute of ``root``, built from the paths under it."""
    tree: dict = {}
    for path, values in vocab.values.items():
        if path[0] != root:
            continue
        node = tree
        for name in path[1:-1]:
            node = node.setdefault(name, {}).setdefault("children", {})
        leaf = node.setdefault(path[-1], {})
        leaf.setdefault("values", []).extend(values or [v for v in _GENERIC if type_ok(path, v)])
    return {name: _node(node) for name, node in tree.items()}


def _node(node: dict) -> st.SearchStrategy:
    choices = []
    if node.get("values"):
        choices.append(st.sampled_from(node["values"]))
    if node.get("children"):
        choices.append(st.fixed_dictionaries({}, optional={k: _node(v) for k, v in node["children"].items()}))
    return st.one_of(*choices) if len(choices) > 1 else choices[0]


def _optional_fields(vocab: Vocabulary, principal_ids: list[str], with_resource: bool) -> st.SearchStrategy[dict]:
    optional: dict[str, st.SearchStrategy] = {}
    if with_resource and vocab.resources:
        optional["resource"] = st.sampled_from(vocab.resources)
    for root in ("args", "context", "provenance"):
        attrs = _attrs_under(vocab, root)
        if attrs:
            optional[root] = st.fixed_dictionaries({}, optional=attrs)
    task = _attrs_under(vocab, "task")
    if vocab.intents:
        task["intent"] = st.sampled_from(vocab.intents)
    if task:
        optional["task"] = st.fixed_dictionaries({}, optional=task)
    approval = _attrs_under(vocab, "approval")
    approval["granted"] = st.booleans()
    optional["approval"] = st.fixed_dictionaries({}, optional=approval)
    credential = _attrs_under(vocab, "credential")
    numbers = st.sampled_from(vocab.numbers)
    credential.setdefault("issued_at", numbers)
    credential.setdefault("ttl", numbers)
    optional["credential"] = st.fixed_dictionaries({}, optional=credential)
    optional["now"] = numbers
    chain = st.lists(st.sampled_from(principal_ids + [p for p in vocab.principals if p not in principal_ids]), max_size=vocab.max_chain)
    optional["delegation"] = st.fixed_dictionaries({"chain": chain})
    return st.fixed_dictionaries({}, optional=optional)


# ---- policies ----------------------------------------------------------------------------

_DEFAULT_AGENTS = ("spiffe://acme.org/agents/a", "spiffe://acme.org/agents/b")
_DEFAULT_TOOLS = ("payments.transfer", "email.send", "github.create_pr", "zendesk.read_ticket")


def quote(text: str) -> str:
    """``text`` as an nhipl string literal."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


@st.composite
def policy_texts(
    draw,
    *,
    agents: Iterable[str] = _DEFAULT_AGENTS,
    groups: Iterable[str] = ("ops", "finance"),
    tools: Iterable[str] = _DEFAULT_TOOLS,
    intents: Iterable[str] = ("triage", "review"),
    max_rules: int = 6,
) -> str:
    """Policy text in nhipl syntax: agent declarations and up to ``max_rules`` rules."""
    agents, groups, tools, intents = list(agents), list(groups), list(tools), list(intents)
    lines = []
    for agent in agents:
        member = draw(st.lists(st.sampled_from(groups), unique=True, max_size=len(groups)))
        lines.append(f"agent {quote(agent)} {{ groups: [{', '.join(map(quote, member))}] }}")
    if draw(st.booleans()):
        lines.append("attenuate delegation;")
    targets = st.sampled_from(tools + [t.split(".")[0] + ".*" for t in tools] + ["*"])
    subjects = st.one_of(
        st.just("any agent"),
        st.sampled_from(agents).map(lambda a: f"agent {quote(a)}"),
        st.sampled_from(groups).map(lambda g: f"agent in {quote(g)}"),
    )
    conditions = st.sampled_from(
        [
            "approval.granted",
            "args.amount > 1000",
            'args has amount and args.amount > 1000',
            "delegation.depth >= 2",
            f"task.intent == {quote(intents[0])}" if intents else "approval.granted",
            'args.to endswith "@acme.com"',
            "tool.sensitive",
        ]
    )
    for i in range(draw(st.integers(0, max_rules))):
        effect = draw(st.sampled_from(["permit", "forbid", "require approval for"]))
        rule = f'@id("r{i}") {effect} {draw(subjects)} to call {quote(draw(targets))}'
        if draw(st.booleans()):
            rule += f" when {draw(conditions)}"
        if draw(st.booleans()):
            rule += f" unless {draw(conditions)}"
        if effect == "permit" and draw(st.booleans()):
            rule += f" grant ttl {draw(st.integers(1, 60))}m"
        rule += ";"
        if intents and draw(st.integers(0, 3)) == 0:
            rule = f"task {quote(draw(st.sampled_from(intents)))} {{ {rule} }}"
        lines.append(rule)
    if draw(st.booleans()):
        lines.append(f"tool {quote(tools[0].split('.')[0] + '.*')} {{ sensitive: true }}")
    return "\n".join(lines) + "\n"


def policies(**kwargs) -> st.SearchStrategy:
    """Loaded :class:`~nhipl.Policies` drawn from :func:`policy_texts` (same arguments)."""
    from ..loader import loads

    return policy_texts(**kwargs).map(lambda text: loads(text, source="<generated>"))


def invariant_requests(policies, invariant: A.Invariant, vocabulary: Vocabulary | None = None) -> st.SearchStrategy[dict]:
    """Requests aimed at an invariant's scope: its action, tools, resources and subject ids."""
    vocab = vocabulary or Vocabulary.of(policies)
    principals = None
    if isinstance(invariant.subject, A.AgentIds):
        principals = invariant.subject.ids
    return requests(
        policies,
        actions=[invariant.action],
        tools=invariant.targets,
        principals=principals,
        resources=invariant.resources,
        vocabulary=vocab,
    )


__all__ = ["requests", "policies", "policy_texts", "invariant_requests", "instantiate"]
