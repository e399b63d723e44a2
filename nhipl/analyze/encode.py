"""Decisions as solver formulas: the semantics of the language, symbolically.

For one policy set and one :class:`~nhipl.analyze.space.RequestSpace`,
:class:`PolicyEncoding` builds, for the principal and for each delegator of the
chain (up to the chain bound), which rules are in scope, which match, which error,
and from those the effect, the determining rules and ``credential_ttl`` exactly
as the evaluators decide them:

- a condition that errors (missing attribute, wrong type, a non-boolean
  condition) makes a permit not match and a forbid or approval gate match;
- any matching forbid denies; no matching permit denies; a matching approval rule
  without ``approval.granted == true`` asks for approval; otherwise allow;
- with ``attenuate delegation;`` the most restrictive of the principal's and each
  delegator's decision, each delegator judged with its declared attributes and
  the chain before it;
- ``credential_ttl`` for allow: the smallest ``grant ttl`` of the matching permits
  and ``max_credential_ttl`` of the principal, over every identity judged.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import z3

from .. import ast as A
from ..decision import ALLOW, APPROVAL_REQUIRED, DENY
from .solve import UNENCODED
from .space import ABSENT, ConstNode, FixedNode, IteNode, Node, RequestSpace, ValueNode, ite_node
from .symbolic import (
    BOOL,
    FALSE,
    LIST,
    NUM,
    OBJ,
    STR,
    TRUE,
    Sym,
    Unencodable,
    boolean,
    const,
    contains,
    equal,
    glob_constraint,
    item_of,
    string_literal,
)

EFFECT_CODE = {ALLOW: 0, APPROVAL_REQUIRED: 1, DENY: 2}
EFFECT_NAME = {v: k for k, v in EFFECT_CODE.items()}


@dataclass
class Identity:
    """Who is judged: the principal, or the delegator at ``position`` of the chain."""

    id: z3.SeqRef
    principal: Node
    chain_length: object  # z3 Int or Python int
    position: int | None = None  # None: the principal itself
    request_attrs: bool = True  # attributes in the request's principal object apply


@dataclass
class RuleFormulas:
    scope: z3.BoolRef
    holds: z3.BoolRef  # conditions true, no error
    error: z3.BoolRef

    @property
    def matched_as_permit(self) -> z3.BoolRef:
        return z3.And(self.scope, self.holds)

    @property
    def matched_as_gate(self) -> z3.BoolRef:
        return z3.And(self.scope, z3.Or(self.holds, self.error))


@dataclass
class SymDecision:
    effect: z3.ArithRef  # EFFECT_CODE
    has_ttl: z3.BoolRef
    ttl: z3.ArithRef
    determining: dict[str, z3.BoolRef] = field(default_factory=dict)
    matched: dict[str, z3.BoolRef] = field(default_factory=dict)


class _Unsupported(Exception):
    pass


class PolicyEncoding:
    """One policy set's decisions over ``space``. ``rules`` may be a subset of the
    policy set's rules (a slice that provably contains every rule that can match in
    the region a question is asked about)."""

    def __init__(self, policies, space: RequestSpace, rules=None):
        self.policies = policies
        self.space = space
        self.rules = tuple(policies.rules if rules is None else rules)
        self._tool_node = self._tool()
        self._delegation_nodes: dict = {}
        self._groups: dict = {}

    # -- the environment conditions see ---------------------------------------------------
    def _declared(self, identity: z3.SeqRef, name: str) -> Node:
        node: Node = ABSENT
        for agent_id, attrs in self.policies.agents.items():
            if name in attrs:
                node = ite_node(identity == string_literal(agent_id), ConstNode(attrs[name]), node)
        return node

    def principal_node(self, identity: z3.SeqRef, with_request_attrs: bool) -> Node:
        space = self.space
        attributes: dict[str, Node] = {}

        def attribute(name: str) -> Node:
            node = attributes.get(name)
            if node is None:
                node = self._declared(identity, name)
                if with_request_attrs:
                    given = space.principal_attr(name)
                    node = ite_node(given.sym.present, given, node)
                node = attributes[name] = _Memo(node)
            return node

        return FixedNode({"id": ValueNode(Sym(TRUE, STR, s=identity))}, fallback=attribute)

    def _tool(self) -> Node:
        space = self.space
        tools = self.policies.tools

        def attribute(name: str) -> Node:
            node: Node = ABSENT
            for pattern, attrs in tools:  # later declarations over earlier ones
                if name in attrs:
                    node = ite_node(glob_constraint(pattern, space.tool), ConstNode(attrs[name]), node)
            return node

        return FixedNode({"name": ValueNode(Sym(TRUE, STR, s=space.tool))}, fallback=attribute)

    def _delegation(self, length) -> Node:
        node = self._delegation_nodes.get(str(length))
        if node is None:
            space = self.space
            bound = space.bounds.chain if not isinstance(length, int) else length
            items = tuple(Sym(TRUE, STR, s=space.chain[i]) for i in range(bound))
            length_expr = length if not isinstance(length, int) else z3.IntVal(length)
            chain = Sym(TRUE, LIST, length=length_expr, items=items)
            depth = Sym(TRUE, NUM, n=z3.ToReal(length_expr))
            node = FixedNode({"chain": ValueNode(chain), "depth": ValueNode(depth)})
            self._delegation_nodes[str(length)] = node
        return node

    def root(self, name: str, who: Identity) -> Node:
        space = self.space
        if name == "principal":
            return who.principal
        if name == "action":
            return ValueNode(Sym(TRUE, STR, s=space.action))
        if name == "tool":
            return self._tool_node
        if name == "delegation":
            return self._delegation(who.chain_length)
        if name == "resource":
            return ValueNode(Sym(space.has_resource, STR, s=space.resource))
        if name == "now":
            return ValueNode(Sym(space.has_now, NUM, n=space.now))
        if name == "approval":
            given = space.roots["approval"]
            return ite_node(given.sym.present, given, ConstNode({"granted": False}))
        if name == "credential":
            return _Credential(space)
        if name == "history":
            raise _Unsupported("the request's `history`")
        if name in space.roots:
            return space.roots[name]
        return ABSENT

    def lookup(self, path: A.Path, who: Identity) -> Node:
        node = self.root(path.root, who)
        for attr in path.attrs:
            node = node.child(attr)
        return node

    # -- expressions ------------------------------------------------------------------------
    def expr(self, e: A.Expr, who: Identity) -> tuple[Sym, z3.BoolRef]:
        """The value of ``e`` and the condition under which evaluating it errors."""
        notes = self.space.notes
        if isinstance(e, A.Literal):
            return const(e.value), FALSE
        if isinstance(e, A.Duration):
            return const(e.seconds), FALSE
        if isinstance(e, A.ListExpr):
            vals = [self.expr(item, who) for item in e.items]
            return Sym(TRUE, LIST, length=len(vals), items=tuple(item_of(v) for v, _ in vals)), _any(err for _, err in vals)
        if isinstance(e, A.Path):
            value = self.lookup(e, who).value()
            present = value.present if not isinstance(value.present, bool) else z3.BoolVal(value.present)
            return value, z3.Not(present)
        if isinstance(e, A.Not):
            v, err = self.expr(e.operand, who)
            return boolean(z3.Not(_b(v))), z3.Or(err, z3.Not(v.is_kind(BOOL)))
        if isinstance(e, (A.And, A.Or)):
            return self._logic(e, who)
        if isinstance(e, A.Compare):
            (lv, le), (rv, re) = self.expr(e.left, who), self.expr(e.right, who)
            err = z3.Or(le, re)
            if e.op in ("==", "!="):
                eq = equal(lv, rv, notes)
                return boolean(eq if e.op == "==" else z3.Not(eq)), err
            both = z3.And(lv.is_kind(NUM), rv.is_kind(NUM))
            ln, rn = _n(lv), _n(rv)
            test = {"<": ln < rn, "<=": ln <= rn, ">": ln > rn, ">=": ln >= rn}[e.op]
            return boolean(test), z3.Or(err, z3.Not(both))
        if isinstance(e, A.In):
            (iv, ie), (cv, ce) = self.expr(e.item, who), self.expr(e.container, who)
            return boolean(contains(cv, iv, notes)), z3.Or(ie, ce, z3.Not(cv.is_kind(LIST)))
        if isinstance(e, A.StringTest):
            (lv, le), (rv, re) = self.expr(e.left, who), self.expr(e.right, who)
            err = z3.Or(le, re, z3.Not(z3.And(lv.is_kind(STR), rv.is_kind(STR))))
            ls, rs = _s(lv), _s(rv)
            if e.op == "matches":
                if isinstance(e.right, A.Literal) and isinstance(e.right.value, str):
                    return boolean(glob_constraint(e.right.value, ls)), err
                # a pattern read from the request: exact for patterns without `*`, which
                # are then the only ones considered
                notes.add("`matches` with a pattern from the request: patterns without `*`")
                self.space.axioms.append(z3.Implies(rv.is_kind(STR), z3.Not(z3.Contains(rs, string_literal("*")))))
                return boolean(ls == rs), err
            if e.op == "startswith":
                return boolean(z3.PrefixOf(rs, ls)), err
            if e.op == "endswith":
                return boolean(z3.SuffixOf(rs, ls)), err
            return boolean(z3.Contains(ls, rs)), err
        if isinstance(e, A.Has):
            node = self.lookup(e.path, who)
            v = node.value()
            inner = node.child(e.name).value()
            return boolean(z3.And(_bool(v.present), v.is_kind(OBJ), _bool(inner.present))), FALSE
        if isinstance(e, A.Arith):
            (lv, le), (rv, re) = self.expr(e.left, who), self.expr(e.right, who)
            both = z3.And(lv.is_kind(NUM), rv.is_kind(NUM))
            n = _n(lv) + _n(rv) if e.op == "+" else _n(lv) - _n(rv)
            return Sym(TRUE, NUM, n=n), z3.Or(le, re, z3.Not(both))
        if isinstance(e, (A.Quantifier, A.Call)):
            what = f"`{e.kind}`" if isinstance(e, A.Quantifier) else f"`{e.name}`"
            raise _Unsupported(f"{what} (quantifiers and functions are not encoded)")
        raise _Unsupported(f"expression {type(e).__name__}")

    def _logic(self, e, who: Identity) -> tuple[Sym, z3.BoolRef]:
        is_and = isinstance(e, A.And)
        value, error = (TRUE if is_and else FALSE), FALSE
        for operand in reversed(e.operands):
            v, err = self.expr(operand, who)
            err = z3.Or(err, z3.Not(v.is_kind(BOOL)))
            b = _b(v)
            if is_and:
                value, error = z3.And(b, value), z3.Or(err, z3.And(b, error))
            else:
                value, error = z3.Or(b, value), z3.Or(err, z3.And(z3.Not(b), error))
        return boolean(value), error

    def condition(self, e: A.Expr, who: Identity) -> tuple[z3.BoolRef, z3.BoolRef]:
        """A `when`/`unless` condition: its truth and when it errors (a non-boolean errors)."""
        try:
            v, err = self.expr(e, who)
        except (_Unsupported, Unencodable) as why:
            self.space.notes.add(f"{UNENCODED}: {why}; a condition holding it is left open (true, false or an error)")
            # the same condition for the same identity is the same unknown on both sides of a diff
            name = f"unencoded:{e!r}@{who.id}/{who.chain_length}"
            return self.space.var(z3.Bool, name), self.space.var(z3.Bool, name + "!error")
        return _b(v), z3.Or(err, z3.Not(v.is_kind(BOOL)))

    # -- rules and decisions --------------------------------------------------------------
    def scope(self, rule, who: Identity) -> z3.BoolRef:
        """Subject, action, targets, resources and task: matching that never errors."""
        space = self.space
        actions = rule.actions if isinstance(rule, A.Rule) else (rule.action,)
        conds = [_any(space.action == string_literal(a) for a in actions), _any(glob_constraint(t, space.tool) for t in rule.targets)]
        if rule.resources is not None:
            conds.append(space.has_resource)
            conds.append(_any(glob_constraint(r, space.resource) for r in rule.resources))
        task_intent = getattr(rule, "task_intent", None)
        if task_intent is not None:
            intent = space.roots["task"].child("intent").sym
            conds += [intent.present, intent.s == string_literal(task_intent)]
        subject = rule.subject
        if isinstance(subject, A.AgentIds):
            conds.append(_any(glob_constraint(i, who.id) for i in subject.ids))
        elif isinstance(subject, A.AgentGroup):
            conds.append(_any(self.in_group(who, group) for group in subject.groups))
        return z3.And(conds)

    def in_group(self, who: Identity, group: str) -> z3.BoolRef:
        """``group`` is one of the principal's groups (the request's, else the declared ones)."""
        key = (str(who.id), who.request_attrs, group)
        found = self._groups.get(key)
        if found is None:
            declared = _any(
                who.id == string_literal(agent_id)
                for agent_id, attrs in self.policies.agents.items()
                if isinstance(attrs.get("groups"), list) and group in attrs["groups"]
            )
            found = declared
            if who.request_attrs:
                given = self.space.principal_attr("groups").sym
                found = z3.If(given.present, contains(given, const(group)), declared)
            self._groups[key] = found
        return found

    def rule(self, rule, who: Identity) -> RuleFormulas:
        scope = self.scope(rule, who)
        holds, error = TRUE, FALSE
        if rule.unless is not None:
            u, ue = self.condition(rule.unless, who)
            holds, error = z3.Not(u), ue
        if rule.when is not None:
            w, we = self.condition(rule.when, who)
            holds, error = z3.And(w, holds), z3.Or(we, z3.And(w, error))
        return RuleFormulas(scope, z3.And(z3.Not(error), holds), error)

    def identities(self) -> list[Identity]:
        space = self.space
        own = Identity(space.principal_id, self.principal_node(space.principal_id, True), space.chain_length)
        if not self.policies.attenuate:
            return [own]
        members = [
            Identity(space.chain[i], self.principal_node(space.chain[i], False), i, position=i, request_attrs=False)
            for i in range(space.bounds.chain)
        ]
        return [own] + members

    def decide(self, who: Identity) -> SymDecision:
        forbids, permits, approvals = [], [], []
        for rule in self.rules:
            f = self.rule(rule, who)
            if rule.effect == A.PERMIT:
                permits.append((rule, f.matched_as_permit))
            elif rule.effect == A.FORBID:
                forbids.append((rule, f.matched_as_gate))
            else:
                approvals.append((rule, f.matched_as_gate))
        any_forbid = _any(m for _, m in forbids)
        any_permit = _any(m for _, m in permits)
        any_approval = _any(m for _, m in approvals)
        given = self.space.roots["approval"]
        granted_node = given.child("granted").sym
        granted = z3.And(given.sym.present, granted_node.present, granted_node.b)
        deny = z3.Or(any_forbid, z3.Not(any_permit))
        gate = z3.And(any_approval, z3.Not(granted))
        effect = z3.If(deny, EFFECT_CODE[DENY], z3.If(gate, EFFECT_CODE[APPROVAL_REQUIRED], EFFECT_CODE[ALLOW]))
        has_ttl, ttl = FALSE, z3.RealVal(0)
        for rule, m in permits:
            if rule.ttl is not None:
                has_ttl, ttl = _min(has_ttl, ttl, m, z3.RealVal(rule.ttl.seconds))
        ceiling = who.principal.child("max_credential_ttl").value()
        if ceiling.n is not None:
            has_ttl, ttl = _min(has_ttl, ttl, z3.And(_bool(ceiling.present), ceiling.is_kind(NUM)), ceiling.n)
        allow = z3.Not(z3.Or(deny, gate))
        decision = SymDecision(effect, z3.And(allow, has_ttl), ttl)
        for rule, m in forbids:
            decision.determining[rule.id] = z3.And(any_forbid, m)
            decision.matched[rule.id] = m
        for rule, m in approvals:
            decision.determining[rule.id] = z3.And(z3.Not(deny), gate, m)
            decision.matched[rule.id] = m
        for rule, m in permits:
            decision.determining[rule.id] = z3.And(allow, m)
            decision.matched[rule.id] = m
        return decision

    def decision(self) -> SymDecision:
        """The final decision: the principal's, attenuated over the chain when in force."""
        whos = self.identities()
        own = self.decide(whos[0])
        if len(whos) == 1:
            return own
        length = self.space.chain_length
        members = [(who, self.decide(who)) for who in whos[1:]]
        final = own.effect
        for who, d in members:
            final = z3.If(z3.And(length > who.position, d.effect > final), d.effect, final)
        has_ttl, ttl = own.has_ttl, own.ttl
        for who, d in members:
            has_ttl, ttl = _min(has_ttl, ttl, z3.And(length > who.position, d.has_ttl), d.ttl)
        is_allow = final == EFFECT_CODE[ALLOW]
        result = SymDecision(final, z3.And(is_allow, has_ttl), ttl)
        own_decides = own.effect == final
        earlier = FALSE
        selectors = []
        for who, d in members:
            here = z3.And(z3.Not(own_decides), z3.Not(earlier), length > who.position, d.effect == final)
            selectors.append((here, d))
            earlier = z3.Or(earlier, z3.And(length > who.position, d.effect == final))
        for rid, det in own.determining.items():
            result.determining[rid] = z3.Or([z3.And(own_decides, det)] + [z3.And(sel, d.determining[rid]) for sel, d in selectors])
            result.matched[rid] = z3.Or([own.matched[rid]] + [z3.And(length > who.position, d.matched[rid]) for who, d in members])
        return result


class _Memo(Node):
    """A node whose value is built once (a declared attribute is an ite over every agent)."""

    def __init__(self, node: Node):
        self.node = node
        self.sym: Sym | None = None
        self.children: dict[str, Node] = {}

    def value(self) -> Sym:
        if self.sym is None:
            self.sym = self.node.value()
        return self.sym

    def child(self, name: str) -> Node:
        found = self.children.get(name)
        if found is None:
            found = self.children[name] = _Memo(self.node.child(name))
        return found


class _Credential(Node):
    """``credential``: the request's object, with ``age`` derived as ``now - issued_at``."""

    def __init__(self, space: RequestSpace):
        self.space = space
        self.node = space.roots["credential"]

    def value(self) -> Sym:
        return self.node.value()

    def child(self, name: str) -> Node:
        if name != "age":
            return self.node.child(name)
        space = self.space
        issued = self.node.child("issued_at").sym
        present = z3.And(self.node.sym.present, issued.present, space.has_now)
        return ValueNode(Sym(present, NUM, n=space.now - issued.n))


def _any(conds) -> z3.BoolRef:
    conds = list(conds)
    if not conds:
        return FALSE
    return conds[0] if len(conds) == 1 else z3.Or(conds)


def _bool(x):
    return z3.BoolVal(x) if isinstance(x, bool) else x


def _b(v: Sym):
    return v.b if v.b is not None else FALSE


def _n(v: Sym):
    return v.n if v.n is not None else z3.RealVal(0)


def _s(v: Sym):
    return v.s if v.s is not None else z3.StringVal("")


def _min(has, value, cond, candidate):
    take = z3.And(cond, z3.Or(z3.Not(has), candidate < value))
    return z3.Or(has, cond), z3.If(take, candidate, value)


__all__ = ["EFFECT_CODE", "EFFECT_NAME", "IteNode", "PolicyEncoding", "SymDecision"]
