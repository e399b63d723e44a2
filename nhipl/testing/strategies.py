"""Hypothesis strategies: requests built from a policy's vocabulary, and policy sets.

>>> import nhipl
>>> from hypothesis import given
>>> from nhipl.testing import requests
>>> policies = nhipl.loads('permit agent in "ops" to call "deploy.*" when args.env != "prod";')
>>> @given(requests(policies, tools=["deploy.*"]))
... def test_prod_never_allowed(request):
...     if request.get("args", {}).get("env") == "prod":
...         assert policies.evaluate(request).effect != "allow"

Every request drawn is valid (``parse_request`` accepts it) and shrinks toward
the smallest one: a principal id as a plain string, no optional field, the
first name of each list.

Random requests rarely satisfy a rule with three conditions, so half the draws
*focus* on one rule: its action, a tool its targets match, a principal its
subject matches, its task intent and resource, and every attribute its ``when``
condition reads. Focused draws are what find a permit that lets through a
request an invariant forbids.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Iterable

from hypothesis import strategies as st

from .. import ast as A
from ..request import SCHEMA, SCHEMA_BY_NAME
from ..values import glob_match
from .vocabulary import Vocabulary, instantiate, type_ok

# Generic values for an attribute that conditions read without a literal.
_GENERIC = ("x", 0, True)
# Which rules a search for each forbidden effect focuses on: the ones that can give it.
GIVES = {"allow": (A.PERMIT,), "approval_required": (A.APPROVAL,), "deny": (A.FORBID,)}
# The request schema's object fields a drawn request fills (principal and delegation are built
# apart), in the order they are drawn: the order shapes which examples a seed gives.
_ROOTS = ("args", "context", "provenance", "task", "credential", "approval")
if set(_ROOTS) != {f.name for f in SCHEMA if f.kind == "object" and f.name != "delegation"}:
    raise ImportError("the request generator's fields are out of step with the request schema")
_CREDENTIAL = SCHEMA_BY_NAME["credential"].attrs


# A name filter: the name must match one glob of *each* group (None: any name).
Globs = tuple[tuple[str, ...], ...] | None


@dataclass(frozen=True)
class Scope:
    """What every drawn request must have: actions, name filters for tools, principals and
    resources, groups the principal must be in, a task intent, attribute paths present."""

    actions: tuple[str, ...] | None = None
    tools: Globs = None
    principals: Globs = None
    resources: Globs = None
    groups: tuple[str, ...] = ()
    intent: str | None = None
    required: frozenset = frozenset()

    @classmethod
    def of(cls, *, actions=None, tools=None, principals=None, resources=None, groups=(), required=frozenset()):
        """A scope from plain lists of names or globs."""
        return cls(
            actions=tuple(actions) if actions is not None else None,
            tools=_globs(None, tools),
            principals=_globs(None, principals),
            resources=_globs(None, resources),
            groups=tuple(groups),
            required=frozenset(required),
        )

    def narrow(self, rule: A.Rule) -> "Scope":
        """The part of this scope where ``rule`` applies."""
        subject = rule.subject
        return Scope(
            actions=tuple(a for a in dict.fromkeys(rule.actions) if self.actions is None or a in self.actions),
            tools=_globs(self.tools, rule.targets),
            principals=_globs(self.principals, subject.ids if isinstance(subject, A.AgentIds) else None),
            resources=_globs(self.resources, rule.resources),
            # a principal in the rule's first group is in one of its groups
            groups=self.groups + ((subject.group,) if isinstance(subject, A.AgentGroup) else ()),
            intent=rule.task_intent or self.intent,
            required=self.required | read_paths(rule.when),
        )


def _globs(base: Globs, more: Iterable[str] | None) -> Globs:
    if more is None:
        return base
    return (base or ()) + (tuple(more),)


def _matches(globs: Globs, name: str) -> bool:
    return globs is None or all(any(glob_match(g, name) for g in group) for group in globs)


def _names(vocab_names: list[str], globs: Globs) -> list[str]:
    """Vocabulary names within ``globs``, after an instance of each glob that stays within."""
    if globs is None:
        return list(vocab_names)
    out: list[str] = []
    for group in globs:
        for g in group:
            name = instantiate(g)
            if _matches(globs, name) and name not in out:
                out.append(name)
    out.extend(n for n in vocab_names if n not in out and _matches(globs, n))
    return out


def read_paths(expr: A.Expr | None) -> frozenset:
    """The attribute paths a condition reads (root first), except inside ``not`` and ``or``,
    where the path need not be present for the condition to hold."""
    if expr is None:
        return frozenset()
    paths = set()
    stack = [expr]
    while stack:
        node = stack.pop()
        if isinstance(node, A.And):
            stack.extend(node.operands)
        elif isinstance(node, (A.Compare, A.StringTest)):
            stack.extend((node.left, node.right))
        elif isinstance(node, A.In):
            stack.extend((node.item, node.container))
        elif isinstance(node, A.Has):
            paths.add((node.path.root,) + node.path.attrs + (node.name,))
        elif isinstance(node, A.Path) and node.root in SCHEMA_BY_NAME:  # not a quantifier's name
            paths.add((node.root,) + node.attrs)
    return frozenset(paths)


def requests(
    policies,
    *,
    actions: Iterable[str] | None = None,
    tools: Iterable[str] | None = None,
    principals: Iterable[str] | None = None,
    resources: Iterable[str] | None = None,
    focus: bool = True,
    vocabulary: Vocabulary | None = None,
) -> st.SearchStrategy[dict]:
    """Requests (plain dicts) drawn from the vocabulary of ``policies``.

    ``actions``, ``tools``, ``principals`` and ``resources`` narrow the draw: each
    is a list of names or globs; a glob stands for an instance of itself and every
    vocabulary name it matches. ``resources`` makes the resource field required.
    With ``focus`` (the default) half the draws aim at one rule of the policies.
    """
    scope = Scope.of(actions=actions, tools=tools, principals=principals, resources=resources)
    vocab = vocabulary or Vocabulary.of(policies)
    return scoped_requests(policies, scope, policies.rules if focus else (), vocab)


def scoped_requests(
    policies, scope: Scope, focus_rules, vocab: Vocabulary, required: frozenset = frozenset()
) -> st.SearchStrategy[dict]:
    """Requests within ``scope``, with a share of the draws aimed at each of ``focus_rules``.

    ``required`` paths are present in the aimed draws only: the others may lack them,
    which is how a condition that errors on a missing attribute gets tried.
    """
    general = _requests(vocab, policies.agents, scope)
    if general is None:
        raise ValueError("no request fits: no action or tool name is within the scope")
    aimed = [replace(scope, required=scope.required | required)] if required else []
    aimed += [replace(scope.narrow(r), required=scope.narrow(r).required | required) for r in focus_rules]
    focused = [s for s in (_requests(vocab, policies.agents, a) for a in aimed) if s is not None]
    if not focused:
        return general
    return st.one_of(general, st.one_of(*focused))


def invariant_requests(policies, invariant: A.Invariant, vocabulary: Vocabulary | None = None) -> st.SearchStrategy[dict]:
    """Requests aimed at an invariant's scope, many of them at the rules that can give
    the effect it forbids, with the attributes its ``when`` reads."""
    vocab = vocabulary or Vocabulary.of(policies)
    subject = invariant.subject
    scope = Scope.of(
        actions=(invariant.action,),
        tools=invariant.targets,
        principals=subject.ids if isinstance(subject, A.AgentIds) else None,
        resources=invariant.resources,
        groups=(subject.group,) if isinstance(subject, A.AgentGroup) else (),
    )
    rules = [r for r in policies.rules if r.effect in GIVES[invariant.effect]]
    return scoped_requests(policies, scope, rules, vocab, read_paths(invariant.when))


# ---- building one request ------------------------------------------------------------


def _requests(vocab: Vocabulary, declared: dict, scope: Scope) -> st.SearchStrategy[dict] | None:
    actions = [a for a in (scope.actions if scope.actions is not None else vocab.actions)]
    tools = {a: _names(vocab.tools_for(a), scope.tools) for a in actions}
    tools = {a: names for a, names in tools.items() if names}
    if not tools:
        return None
    principal = _principal(vocab, declared, scope)
    if principal is None:
        return None
    resources = _names(vocab.resources, scope.resources) if scope.resources is not None else None
    if resources == []:
        return None
    fields = _fields(vocab, scope, with_resource=resources is None)
    return _request(
        st.sampled_from(list(tools)),
        {a: st.sampled_from(names) for a, names in tools.items()},
        principal,
        fields,
        st.sampled_from(resources) if resources else None,
    )


@st.composite
def _request(draw, action_st, tools_by_action, principal_st, fields_st, resource_st) -> dict:
    action = draw(action_st)
    request: dict = {"principal": draw(principal_st), "tool": draw(tools_by_action[action])}
    if action != "call":
        request["action"] = action
    if resource_st is not None:
        request["resource"] = draw(resource_st)
    request.update(draw(fields_st))
    # `age` is derived from `now - issued_at`; without `now` there is none.
    credential = request.get("credential")
    if credential and "issued_at" in credential and "now" not in request:
        request["now"] = credential["issued_at"]
    return request


def _principal(vocab: Vocabulary, declared: dict, scope: Scope) -> st.SearchStrategy | None:
    """A principal id, or for an undeclared identity an object with attributes.

    Declared agents keep their declared attributes: a counterexample in which the
    summariser claims the responders' groups proves nothing about the summariser.
    """
    ids = _names(vocab.principals, scope.principals)
    need = scope.groups
    members = [i for i in ids if i in declared and set(need) <= set(declared[i].get("groups") or ())]
    if not need:
        members = ids
    undeclared = [i for i in ids if i not in declared]
    optional = {name: _node(node, set()) for name, node in _tree(vocab, "principal").items()}
    required: dict[str, st.SearchStrategy] = {}
    if vocab.groups:
        groups = st.lists(st.sampled_from(vocab.groups), unique=True, max_size=3)
        if need:
            required["groups"] = groups.map(lambda gs: list(need) + [g for g in gs if g not in need])
        else:
            optional["groups"] = groups
    choices = []
    if members:
        choices.append(st.sampled_from(members))
    if undeclared and (required or optional):
        attrs = st.fixed_dictionaries(required, optional=optional)
        choices.append(st.builds(lambda pid, a: {"id": pid, **a}, st.sampled_from(undeclared), attrs))
    if not choices:
        return None
    return st.one_of(*choices) if len(choices) > 1 else choices[0]


def _tree(vocab: Vocabulary, root: str) -> dict:
    """The attribute paths under ``root`` as a tree: name -> {"values": [...], "children": {...}}."""
    tree: dict = {}
    for path, values in vocab.values.items():
        if path[0] != root:
            continue
        node = tree
        for name in path[1:-1]:
            node = node.setdefault(name, {}).setdefault("children", {})
        leaf = node.setdefault(path[-1], {})
        leaf.setdefault("values", []).extend(values or [v for v in _GENERIC if type_ok(path, v)])
    return tree


def _object(tree: dict, required: set) -> st.SearchStrategy[dict]:
    """An object whose keys come from ``tree``; the first names of ``required`` paths are always there."""
    must = {p[0] for p in required}
    strategies = {name: _node(node, {p[1:] for p in required if p[0] == name and len(p) > 1}) for name, node in tree.items()}
    return st.fixed_dictionaries(
        {k: v for k, v in strategies.items() if k in must},
        optional={k: v for k, v in strategies.items() if k not in must},
    )


def _node(node: dict, required: set) -> st.SearchStrategy:
    choices = []
    if node.get("values") and not required:
        choices.append(st.sampled_from(node["values"]))
    if node.get("children"):
        choices.append(_object(node["children"], required))
    if not choices:  # a required sub-path under a leaf: an object can't be built; use the leaf
        choices.append(st.sampled_from(node.get("values") or list(_GENERIC)))
    return st.one_of(*choices) if len(choices) > 1 else choices[0]


def _fields(vocab: Vocabulary, scope: Scope, with_resource: bool) -> st.SearchStrategy[dict]:
    """The optional request fields; those whose paths the scope requires are always present."""
    required_paths = set(scope.required)
    if ("credential", "age") in required_paths:
        required_paths |= {("credential", "issued_at"), ("now",)}
    if scope.intent is not None:
        required_paths.add(("task", "intent"))
    roots = {p[0] for p in required_paths}
    numbers = st.sampled_from(vocab.numbers)
    strategies: dict[str, st.SearchStrategy] = {}
    if with_resource and vocab.resources:
        strategies["resource"] = st.sampled_from(vocab.resources)
    for root in _ROOTS:
        tree = _tree(vocab, root)
        if root == "task":
            tree.setdefault("intent", {})["values"] = [scope.intent] if scope.intent else list(vocab.intents)
            if not tree["intent"]["values"]:
                del tree["intent"]
        elif root == "approval":
            tree.setdefault("granted", {})["values"] = [False, True]
        elif root == "credential":
            for name, kind in _CREDENTIAL.items():
                if kind == "derived":  # `age`: from `now - issued_at`
                    tree.pop(name, None)
                elif kind == "number":
                    tree.setdefault(name, {})["values"] = list(vocab.numbers)
        if tree:
            strategies[root] = _object(tree, {p[1:] for p in required_paths if p[0] == root and len(p) > 1})
    strategies["now"] = numbers
    chain = st.lists(st.sampled_from(vocab.principals), max_size=vocab.max_chain)
    strategies["delegation"] = st.fixed_dictionaries({"chain": chain})
    return st.fixed_dictionaries(
        {k: v for k, v in strategies.items() if k in roots},
        optional={k: v for k, v in strategies.items() if k not in roots},
    )


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




__all__ = ["Scope", "invariant_requests", "policies", "policy_texts", "quote", "read_paths", "requests", "scoped_requests"]
