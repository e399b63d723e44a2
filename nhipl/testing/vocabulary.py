"""The words a policy set uses, as raw material for generated requests.

A counterexample to an invariant is almost always built from the policy's own
vocabulary: a declared agent, a group a rule names, a tool that one of the
rule targets matches, a task intent, the literal an ``args.amount <`` compares
with. :class:`Vocabulary` gathers those words from the AST (rules, declarations,
invariants) so that :func:`nhipl.testing.requests` can draw requests that
exercise every rule, instead of random strings that match none.

Globs are *instantiated*: every ``*`` becomes ``x`` (``"payments.*"`` gives
``"payments.x"``), so a generated name matches the glob it came from.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .. import ast as A
from ..request import attribute_paths
from ..values import glob_match

# A name no rule mentions: what a stranger looks like.
STRANGER = "spiffe://example.org/agents/stranger"
OTHER_TOOL = "other.tool"

# Request fields whose values the request parser types strictly (the request schema).
_STRING_FIELDS = attribute_paths("string")
_NUMBER_FIELDS = attribute_paths("number")
_BOOLEAN_FIELDS = attribute_paths("boolean")
# Set by the request builder itself, not drawn as free values.
_DERIVED = attribute_paths("derived", "identity", "identities", "strings")
# Roots whose attributes the request may carry as free-form objects.
OBJECT_ROOTS = ("args", "context", "provenance", "task", "credential", "approval", "principal")


def instantiate(pattern: str) -> str:
    """A name that the glob ``pattern`` matches: each ``*`` becomes ``x``."""
    return pattern.replace("*", "x")


def _add(values: list, value: object) -> None:
    # Keep first-seen order (shrinking prefers earlier values) and JSON types apart
    # (True and 1 are different values here).
    for v in values:
        if v.__class__ is value.__class__ and v == value:
            return
    values.append(value)


def type_ok(path: tuple[str, ...], value: object) -> bool:
    """Whether the request parser accepts ``value`` at ``path``."""
    if path in _STRING_FIELDS or path[0] == "provenance":
        return isinstance(value, str)
    if path in _NUMBER_FIELDS:
        return value.__class__ in (int, float)
    if path in _BOOLEAN_FIELDS:
        return isinstance(value, bool)
    return True


@dataclass
class Vocabulary:
    """Names and values found in a policy set, each list in first-seen order."""

    principals: list[str] = field(default_factory=list)
    groups: list[str] = field(default_factory=list)
    actions: list[str] = field(default_factory=list)
    tools: list[str] = field(default_factory=list)
    tools_by_action: dict[str, list[str]] = field(default_factory=dict)
    resources: list[str] = field(default_factory=list)
    intents: list[str] = field(default_factory=list)
    numbers: list[int | float] = field(default_factory=list)
    # Attribute paths (root first, e.g. ("args", "amount")) and candidate values.
    values: dict[tuple[str, ...], list] = field(default_factory=dict)
    max_chain: int = 2

    @classmethod
    def of(cls, policies) -> "Vocabulary":
        """The vocabulary of a loaded :class:`~nhipl.Policies` (rules, declarations, invariants)."""
        vocab = cls()
        for agent_id, attrs in policies.agents.items():
            _add(vocab.principals, agent_id)
            for g in attrs.get("groups") or ():
                if isinstance(g, str):
                    _add(vocab.groups, g)
        for pattern, _attrs in policies.tools:
            _add(vocab.tools, instantiate(pattern))
        for rule in policies.rules:
            for action in rule.actions:
                vocab._scope(rule.subject, action, rule.targets, rule.resources)
            if rule.task_intent is not None:
                _add(vocab.intents, rule.task_intent)
            vocab._condition(rule.when)
            vocab._condition(rule.unless)
        for _module, inv in policies.invariants:
            vocab._invariant(inv)
        vocab._finish()
        return vocab

    def add_invariant(self, inv: A.Invariant) -> None:
        """Add the words of an invariant that is not part of the policies (e.g. built in Python)."""
        self._invariant(inv)
        self._finish()

    def _invariant(self, inv: A.Invariant) -> None:
        self._scope(inv.subject, inv.action, inv.targets, inv.resources)
        self._condition(inv.when)
        self._condition(inv.unless)

    # -- gathering ---------------------------------------------------------------------------
    def _scope(self, subject, action: str, targets, resources) -> None:
        _add(self.actions, action)
        per_action = self.tools_by_action.setdefault(action, [])
        for t in targets:
            _add(per_action, instantiate(t))
            if action != "delegate":
                _add(self.tools, instantiate(t))
        for r in resources or ():
            _add(self.resources, instantiate(r))
        if isinstance(subject, A.AgentIds):
            for i in subject.ids:
                _add(self.principals, instantiate(i))
        elif isinstance(subject, A.AgentGroup):
            for group in subject.groups:
                _add(self.groups, group)

    def _value(self, path: tuple[str, ...], value: object) -> None:
        root = path[0]
        if path in _DERIVED:
            return
        if root in ("tool", "action"):
            return  # the tool's attributes come from declarations; the action is drawn apart
        if root == "resource":
            if isinstance(value, str):
                _add(self.resources, value)
            return
        if root == "now":
            if value.__class__ in (int, float):
                _add(self.numbers, value)
            return
        if root == "delegation":
            return
        if len(path) < 2 or root not in OBJECT_ROOTS:
            return
        if path == ("task", "intent") and isinstance(value, str):
            _add(self.intents, value)
            return
        if not type_ok(path, value):
            return
        _add(self.values.setdefault(path, []), value)

    def _mention(self, path: tuple[str, ...]) -> None:
        """A path a condition reads without a literal to compare it with."""
        if len(path) > 1 and path[0] in OBJECT_ROOTS and path not in _DERIVED:
            self.values.setdefault(path, [])

    def _condition(self, expr: A.Expr | None) -> None:
        if expr is None:
            return
        boolean_positions: list[A.Expr] = [expr]
        for node in A.iter_exprs(expr):
            if isinstance(node, (A.And, A.Or)):
                boolean_positions.extend(node.operands)
            elif isinstance(node, A.Not):
                boolean_positions.append(node.operand)
            elif isinstance(node, A.Compare):
                self._compare(node)
            elif isinstance(node, A.In):
                self._membership(node)
            elif isinstance(node, A.StringTest):
                self._string_test(node)
            elif isinstance(node, A.Has):
                self._mention(_path(node.path) + (node.name,))
        for node in boolean_positions:
            if isinstance(node, A.Path):
                path = _path(node)
                self._value(path, True)
                self._value(path, False)

    def _compare(self, node: A.Compare) -> None:
        for p, lit in ((node.left, node.right), (node.right, node.left)):
            if not isinstance(p, A.Path):
                continue
            path = _path(p)
            if isinstance(lit, A.Path):
                self._mention(path)
                continue
            value = _literal(lit)
            if value is _NOT_LITERAL:
                continue
            if path == ("delegation", "depth") and value.__class__ is int:
                self.max_chain = max(self.max_chain, min(value + 1, 4))
                continue
            if path == ("credential", "age") and value.__class__ in (int, float):
                # age = now - issued_at: draw issued_at 0 and now near the literal
                for v in (value - 1, value, value + 1):
                    if v >= 0:
                        _add(self.numbers, v)
                continue
            self._value(path, value)
            if value.__class__ in (int, float):
                self._value(path, value - 1)
                self._value(path, value + 1)
                for v in (value - 1, value, value + 1):
                    if v >= 0:
                        _add(self.numbers, v)  # also candidates for `now` and credential times
            elif isinstance(value, str):
                self._value(path, value + "-other")
            elif isinstance(value, bool):
                self._value(path, not value)

    def _membership(self, node: A.In) -> None:
        item, container = node.item, node.container
        if isinstance(item, A.Path) and isinstance(container, A.ListExpr):
            path = _path(item)
            for x in container.items:
                value = _literal(x)
                if value is not _NOT_LITERAL:
                    self._value(path, value)
        elif isinstance(container, A.Path):
            path = _path(container)
            value = _literal(item)
            if path == ("principal", "groups"):
                if isinstance(value, str):
                    _add(self.groups, value)
                return
            if value is not _NOT_LITERAL:
                self._value(path, [value])
                self._value(path, [])

    def _string_test(self, node: A.StringTest) -> None:
        if not isinstance(node.left, A.Path):
            return
        path = _path(node.left)
        pattern = _literal(node.right)
        if not isinstance(pattern, str):
            self._mention(path)
            return
        made = {
            "startswith": pattern + "x",
            "endswith": "x" + pattern,
            "contains": "x" + pattern + "x",
            "matches": instantiate(pattern),
        }[node.op]
        if path == ("principal", "id"):
            _add(self.principals, made)
            return
        if path == ("tool", "name"):
            _add(self.tools, made)
            return
        self._value(path, made)
        self._value(path, "other")

    def _finish(self) -> None:
        _add(self.actions, "call")
        _add(self.principals, STRANGER)
        _add(self.tools, OTHER_TOOL)
        if not any(n.__class__ is int and n == 0 for n in self.numbers):
            self.numbers.append(0)
        # Hypothesis shrinks a choice toward the first value of its list: put the
        # smallest numbers first, so a counterexample shows the boundary (5000, not 49999).
        self.numbers.sort(key=abs)
        for path, values in self.values.items():
            self.values[path] = sorted(values, key=_simplest)

    # -- queries -----------------------------------------------------------------------------
    def tools_for(self, action: str) -> list[str]:
        """Tool names worth trying with ``action``: the ones its rules target first."""
        out: list[str] = []
        for t in self.tools_by_action.get(action, ()):
            _add(out, t)
        if action == "delegate":
            for p in self.principals:
                _add(out, p)
        for t in self.tools:
            _add(out, t)
        return out

    def matching(self, names: list[str], patterns: tuple[str, ...]) -> list[str]:
        """``names`` that match one of the globs, after an instance of each glob."""
        out: list[str] = []
        for p in patterns:
            _add(out, instantiate(p))
        for n in names:
            if any(glob_match(p, n) for p in patterns):
                _add(out, n)
        return out


_NOT_LITERAL = object()


def _simplest(value: object) -> tuple:
    """Sort key: numbers first, smallest magnitude first; other values keep their order."""
    if value.__class__ in (int, float):
        return (0, abs(value), value)
    return (1, 0, 0)


def _literal(node: A.Expr) -> object:
    if isinstance(node, A.Literal):
        return node.value
    if isinstance(node, A.Duration):
        return node.seconds
    return _NOT_LITERAL


def _path(node: A.Path) -> tuple[str, ...]:
    return (node.root,) + node.attrs
