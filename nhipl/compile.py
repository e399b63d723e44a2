"""The compiled evaluator: indexes and compiled conditions.

* Rules are indexed by action, then by target: exact targets in a hash map,
  glob targets by their literal prefix (looked up for every prefix of the tool
  name), by their literal suffix when the prefix is empty, and the rest (``*``)
  in one short list. The candidate rules for an (action, tool) pair are worked
  out once and cached; so is the subject filter for an (action, tool,
  principal) triple when the principal's groups come from declarations.
* Conditions are compiled once into closures. No text from a policy is ever
  turned into code.

It must agree with :mod:`nhipl.interpret` on every policy and request; the
differential test holds it to that.
"""

from __future__ import annotations

from typing import Callable

from . import ast as A
from .decision import ALLOW, RESTRICTIVENESS, Decision, EvalError, Reasons, allow_lines, combine, explain, make_decision
from .request import Request, parse_request
from .values import Glob, equal, glob, type_name

_CACHE_LIMIT = 100_000
_FORBID, _PERMIT, _APPROVAL = 0, 1, 2
_KIND = {A.FORBID: _FORBID, A.PERMIT: _PERMIT, A.APPROVAL: _APPROVAL}


class _Failure(Exception):
    __slots__ = ("message",)

    def __init__(self, message: str):
        self.message = message


Cond = Callable[[dict], object]


# ---- conditions ------------------------------------------------------------------------


def _describe_missing(env: dict, root: str, attrs: tuple[str, ...]) -> str:
    if root not in env:
        return f"the request has no `{root}`"
    value, walked = env[root], root
    for attr in attrs:
        if value.__class__ is not dict:
            return f"`{walked}` is a {type_name(value)}, it has no attribute `{attr}`"
        if attr not in value:
            return f"`{walked}` has no attribute `{attr}`"
        value, walked = value[attr], f"{walked}.{attr}"
    return f"cannot read `{walked}`"


def _compile_path(node: A.Path) -> Cond:
    root, attrs = node.root, node.attrs
    if not attrs:

        def get_root(env):
            try:
                return env[root]
            except KeyError:
                raise _Failure(f"the request has no `{root}`") from None

        return get_root
    if len(attrs) == 1:
        (attr,) = attrs

        def get1(env):
            try:
                value = env[root]
                if value.__class__ is dict:
                    return value[attr]
            except KeyError:
                pass
            raise _Failure(_describe_missing(env, root, attrs))

        return get1

    def get_n(env):
        try:
            value = env[root]
            for attr in attrs:
                if value.__class__ is not dict:
                    break
                value = value[attr]
            else:
                return value
        except KeyError:
            pass
        raise _Failure(_describe_missing(env, root, attrs))

    return get_n


def _boolean(value: object, what: str) -> bool:
    if value is True or value is False:
        return value
    raise _Failure(f"{what} is a {type_name(value)}, not a boolean")


def _is_const(node: A.Expr) -> bool:
    if isinstance(node, (A.Literal, A.Duration)):
        return True
    return isinstance(node, A.ListExpr) and all(_is_const(i) for i in node.items)


def _const(node: A.Expr) -> object:
    if isinstance(node, A.Literal):
        return node.value
    if isinstance(node, A.Duration):
        return node.seconds
    return [_const(i) for i in node.items]  # type: ignore[union-attr]


def _compile_equal(left: A.Expr, right: A.Expr) -> Cond:
    if _is_const(left) and not _is_const(right):
        left, right = right, left
    get = compile_expr(left)
    if _is_const(right):
        const = _const(right)
        cls = const.__class__
        if cls is str:
            return lambda env: (v := get(env)).__class__ is str and v == const
        if cls is bool or const is None:
            return lambda env: get(env) is const
        if cls is int or cls is float:
            return lambda env: ((c := (v := get(env)).__class__) is int or c is float) and v == const
        return lambda env: equal(get(env), const)
    other = compile_expr(right)
    return lambda env: equal(get(env), other(env))


def _compile_order(op: str, left: A.Expr, right: A.Expr) -> Cond:
    get_l, get_r = compile_expr(left), compile_expr(right)
    compare = {
        "<": lambda a, b: a < b,
        "<=": lambda a, b: a <= b,
        ">": lambda a, b: a > b,
        ">=": lambda a, b: a >= b,
    }[op]

    def order(env):
        a = get_l(env)
        b = get_r(env)
        ca, cb = a.__class__, b.__class__
        if (ca is int or ca is float) and (cb is int or cb is float):
            return compare(a, b)
        raise _Failure(f"cannot order a {type_name(a)} and a {type_name(b)} with `{op}`")

    return order


def _compile_in(node: A.In) -> Cond:
    get_item = compile_expr(node.item)
    if _is_const(node.container) and isinstance(node.container, A.ListExpr):
        members = _const(node.container)
        strings = frozenset(m for m in members if m.__class__ is str)
        numbers = frozenset(m for m in members if m.__class__ is int or m.__class__ is float)
        others = [m for m in members if m.__class__ not in (str, int, float)]

        def in_const(env):
            v = get_item(env)
            c = v.__class__
            if c is str:
                return v in strings
            if c is int or c is float:
                return v in numbers
            return any(equal(v, m) for m in others)

        return in_const
    get_container = compile_expr(node.container)

    def in_dynamic(env):
        v = get_item(env)
        container = get_container(env)
        if container.__class__ is not list:
            raise _Failure(f"`in` needs a list on the right, not a {type_name(container)}")
        return any(equal(v, m) for m in container)

    return in_dynamic


def _compile_strtest(node: A.StringTest) -> Cond:
    get_l, get_r = compile_expr(node.left), compile_expr(node.right)
    op = node.op

    def fail(a, b):
        return _Failure(f"`{op}` needs two strings, not a {type_name(a)} and a {type_name(b)}")

    if isinstance(node.right, A.Literal) and node.right.value.__class__ is str:
        lit = node.right.value
        if op == "startswith":
            test = lambda s: s.startswith(lit)  # noqa: E731
        elif op == "endswith":
            test = lambda s: s.endswith(lit)  # noqa: E731
        elif op == "contains":
            test = lambda s: lit in s  # noqa: E731
        else:
            test = glob(lit).match

        def strtest_const(env):
            v = get_l(env)
            if v.__class__ is not str:
                raise fail(v, lit)
            return test(v)

        return strtest_const

    def strtest(env):
        a = get_l(env)
        b = get_r(env)
        if a.__class__ is not str or b.__class__ is not str:
            raise fail(a, b)
        if op == "matches":
            return glob(b).match(a)
        if op == "startswith":
            return a.startswith(b)
        if op == "endswith":
            return a.endswith(b)
        return b in a

    return strtest


def _compile_has(node: A.Has) -> Cond:
    root, attrs, name = node.path.root, node.path.attrs, node.name

    def has(env):
        value = env.get(root)
        if root not in env:
            return False
        for attr in attrs:
            if value.__class__ is not dict or attr not in value:
                return False
            value = value[attr]
        return value.__class__ is dict and name in value

    return has


def compile_expr(node: A.Expr) -> Cond:
    """Compile an expression into a closure ``env -> value`` that raises
    ``_Failure`` where the reference interpreter reports an error."""
    if _is_const(node):
        const = _const(node)
        if isinstance(const, list):
            return lambda env: list(const)  # type: ignore[arg-type]
        return lambda env: const
    if isinstance(node, A.Path):
        return _compile_path(node)
    if isinstance(node, A.ListExpr):
        items = [compile_expr(i) for i in node.items]
        return lambda env: [f(env) for f in items]
    if isinstance(node, A.Not):
        inner = compile_expr(node.operand)

        def not_(env):
            v = inner(env)
            if v is True:
                return False
            if v is False:
                return True
            raise _Failure(f"the operand of `not` is a {type_name(v)}, not a boolean")

        return not_
    if isinstance(node, A.And):
        ops = tuple(compile_expr(o) for o in node.operands)

        def and_(env):
            for f in ops:
                v = f(env)
                if v is False:
                    return False
                if v is not True:
                    raise _Failure(f"an operand of `and` is a {type_name(v)}, not a boolean")
            return True

        return and_
    if isinstance(node, A.Or):
        ops = tuple(compile_expr(o) for o in node.operands)

        def or_(env):
            for f in ops:
                v = f(env)
                if v is True:
                    return True
                if v is not False:
                    raise _Failure(f"an operand of `or` is a {type_name(v)}, not a boolean")
            return False

        return or_
    if isinstance(node, A.Compare):
        if node.op == "==":
            return _compile_equal(node.left, node.right)
        if node.op == "!=":
            eq = _compile_equal(node.left, node.right)
            return lambda env: not eq(env)
        return _compile_order(node.op, node.left, node.right)
    if isinstance(node, A.In):
        return _compile_in(node)
    if isinstance(node, A.StringTest):
        return _compile_strtest(node)
    if isinstance(node, A.Has):
        return _compile_has(node)
    raise TypeError(f"unknown expression node {node!r}")


def compile_condition(when: A.Expr | None, unless: A.Expr | None) -> Cond | None:
    """One closure for a rule's ``when``/``unless``: True when the rule matches."""
    w = compile_expr(when) if when is not None else None
    u = compile_expr(unless) if unless is not None else None
    if w is None and u is None:
        return None
    if u is None:

        def when_only(env):
            v = w(env)
            if v is True or v is False:
                return v
            raise _Failure(f"the `when` condition is a {type_name(v)}, not a boolean")

        return when_only

    def when_unless(env):
        if w is not None:
            v = w(env)
            if v is False:
                return False
            if v is not True:
                raise _Failure(f"the `when` condition is a {type_name(v)}, not a boolean")
        v = u(env)
        if v is False:
            return True
        if v is True:
            return False
        raise _Failure(f"the `unless` condition is a {type_name(v)}, not a boolean")

    return when_unless


# ---- rule indexes -----------------------------------------------------------------------


class _CRule:
    __slots__ = ("index", "rule", "id", "kind", "intent", "resources", "cond", "ttl", "because")

    def __init__(self, index: int, rule: A.Rule):
        self.index = index
        self.rule = rule
        self.id = rule.id
        self.kind = _KIND[rule.effect]
        self.intent = rule.task_intent
        self.resources = tuple(glob(r) for r in rule.resources) if rule.resources is not None else None
        self.cond = compile_condition(rule.when, rule.unless)
        self.ttl = rule.ttl
        self.because = rule.because


class _TargetIndex:
    """Rules of one action, found by tool name without scanning them all."""

    def __init__(self) -> None:
        self.exact: dict[str, list[_CRule]] = {}
        self.prefix: dict[str, list[tuple[Glob, _CRule]]] = {}
        self.suffix: dict[str, list[tuple[Glob, _CRule]]] = {}
        self.rest: list[tuple[Glob, _CRule]] = []
        self.prefix_lengths: list[int] = []

    def add(self, target: str, crule: _CRule) -> None:
        g = glob(target)
        if g.exact:
            self.exact.setdefault(target, []).append(crule)
        elif g.prefix:
            self.prefix.setdefault(g.prefix, []).append((g, crule))
        elif g.suffix:
            self.suffix.setdefault(g.suffix, []).append((g, crule))
        else:
            self.rest.append((g, crule))

    def freeze(self) -> None:
        self.prefix_lengths = sorted({len(p) for p in self.prefix})
        self.suffix_lengths = sorted({len(s) for s in self.suffix})

    def lookup(self, tool: str) -> list[_CRule]:
        found: dict[int, _CRule] = {}
        for cr in self.exact.get(tool, ()):
            found[cr.index] = cr
        n = len(tool)
        for length in self.prefix_lengths:
            if length > n:
                break
            for g, cr in self.prefix.get(tool[:length], ()):
                if g.match(tool):
                    found[cr.index] = cr
        for length in self.suffix_lengths:
            if length > n:
                break
            for g, cr in self.suffix.get(tool[n - length :], ()):
                if g.match(tool):
                    found[cr.index] = cr
        for g, cr in self.rest:
            if g.match(tool):
                found[cr.index] = cr
        return [found[i] for i in sorted(found)]


class _Bucket:
    """The rules that can apply to one (action, tool), split by subject."""

    __slots__ = ("any", "ids", "id_globs", "groups", "has_groups")

    def __init__(self, rules: list[_CRule]):
        self.any: list[_CRule] = []
        self.ids: dict[str, list[_CRule]] = {}
        self.id_globs: list[tuple[tuple[Glob, ...], _CRule]] = []
        self.groups: dict[str, list[_CRule]] = {}
        for cr in rules:
            subject = cr.rule.subject
            if isinstance(subject, A.AnyAgent):
                self.any.append(cr)
            elif isinstance(subject, A.AgentGroup):
                self.groups.setdefault(subject.group, []).append(cr)
            else:
                globs = tuple(glob(i) for i in subject.ids)
                if all(g.exact for g in globs):
                    for i in set(subject.ids):
                        self.ids.setdefault(i, []).append(cr)
                else:
                    self.id_globs.append((globs, cr))
        self.has_groups = bool(self.groups)

    def select(self, principal: dict) -> tuple[_CRule, ...]:
        pid = principal["id"]
        found = list(self.any)
        found.extend(self.ids.get(pid, ()))
        if self.has_groups:
            groups = principal.get("groups")
            if groups.__class__ is list:
                seen = set()
                for g in groups:
                    if g.__class__ is str and g not in seen:
                        seen.add(g)
                        found.extend(self.groups.get(g, ()))
        for globs, cr in self.id_globs:
            for g in globs:
                if g.match(pid):
                    found.append(cr)
                    break
        if len(found) > 1:
            unique = {cr.index: cr for cr in found}
            return tuple(unique[i] for i in sorted(unique))
        return tuple(found)


class CompiledPolicies:
    """Fast evaluation of a :class:`~nhipl.policies.Policies`."""

    def __init__(self, policies) -> None:
        self.policies = policies
        self.attenuate = policies.attenuate
        self._by_action: dict[str, _TargetIndex] = {}
        for i, rule in enumerate(policies.rules):
            cr = _CRule(i, rule)
            index = self._by_action.setdefault(rule.action, _TargetIndex())
            for target in rule.targets:
                index.add(target, cr)
        for index in self._by_action.values():
            index.freeze()
        self._buckets: dict[tuple[str, str], _Bucket] = {}
        self._selected: dict[tuple[str, str, str], tuple[_CRule, ...]] = {}
        self._principals: dict[str, dict] = {}
        self._tools: dict[str, dict] = {}

    # -- caches ---------------------------------------------------------------------
    def _bucket(self, action: str, tool: str) -> _Bucket:
        key = (action, tool)
        bucket = self._buckets.get(key)
        if bucket is None:
            index = self._by_action.get(action)
            bucket = _Bucket(index.lookup(tool) if index is not None else [])
            if len(self._buckets) >= _CACHE_LIMIT:
                self._buckets.clear()
            self._buckets[key] = bucket
        return bucket

    def _declared_principal(self, pid: str) -> dict:
        principal = self._principals.get(pid)
        if principal is None:
            principal = self.policies.principal(pid, None)
            if len(self._principals) >= _CACHE_LIMIT:
                self._principals.clear()
            self._principals[pid] = principal
        return principal

    def _tool(self, name: str) -> dict:
        tool = self._tools.get(name)
        if tool is None:
            tool = {**self.policies.tool_attrs(name), "name": name}
            if len(self._tools) >= _CACHE_LIMIT:
                self._tools.clear()
            self._tools[name] = tool
        return tool

    def _candidates(self, req: Request, principal: dict, declared: bool) -> tuple[_CRule, ...]:
        if declared:
            key = (req.action, req.tool, principal["id"])
            found = self._selected.get(key)
            if found is None:
                found = self._bucket(req.action, req.tool).select(principal)
                if len(self._selected) >= _CACHE_LIMIT:
                    self._selected.clear()
                self._selected[key] = found
            return found
        return self._bucket(req.action, req.tool).select(principal)

    # -- evaluation -------------------------------------------------------------------
    def _decide(self, req: Request, principal: dict, declared: bool, chain) -> Decision:
        candidates = self._candidates(req, principal, declared)
        forbids = []
        permits = []
        approvals = []
        errors = []
        if candidates:
            intent = req.task.get("intent") if req.task is not None else None
            resource = req.resource
            env = None
            for cr in candidates:
                if cr.intent is not None and cr.intent != intent:
                    continue
                if cr.resources is not None:
                    if resource is None:
                        continue
                    for g in cr.resources:
                        if g.match(resource):
                            break
                    else:
                        continue
                cond = cr.cond
                if cond is None:
                    matched = True
                else:
                    if env is None:
                        env = self._env(req, principal, chain)
                    try:
                        matched = cond(env)
                    except _Failure as failure:
                        errors.append(EvalError(cr.id, failure.message))
                        matched = cr.kind != _PERMIT
                if matched:
                    kind = cr.kind
                    if kind == _PERMIT:
                        permits.append(cr)
                    elif kind == _FORBID:
                        forbids.append(cr)
                    else:
                        approvals.append(cr)
        if not forbids and permits and not approvals and not errors:
            return self._allow(permits, principal)
        return explain(req, principal, forbids, permits, approvals, errors)

    @staticmethod
    def _allow(permits: list[_CRule], principal: dict) -> Decision:
        ttl = None
        for cr in permits:
            if cr.ttl is not None:
                seconds = cr.ttl.seconds
                if ttl is None or seconds < ttl:
                    ttl = seconds
        ceiling = principal.get("max_credential_ttl")
        if ceiling is not None and ceiling.__class__ is not bool and (ceiling.__class__ is int or ceiling.__class__ is float):
            if ttl is None or ceiling < ttl:
                ttl = ceiling
        rules = (permits[0].id,) if len(permits) == 1 else tuple([cr.id for cr in permits])
        return make_decision(ALLOW, rules, ttl, (), Reasons(allow_lines, rules, (), None, ttl, ()))

    def _env(self, req: Request, principal: dict, chain) -> dict:
        env = {
            "principal": principal,
            "action": req.action,
            "tool": self._tool(req.tool),
            "delegation": {"chain": list(chain), "depth": len(chain)},
            "approval": req.approval if req.approval is not None else {"granted": False},
        }
        if req.resource is not None:
            env["resource"] = req.resource
        if req.args is not None:
            env["args"] = req.args
        if req.task is not None:
            env["task"] = req.task
        if req.credential is not None:
            env["credential"] = req.credential
        if req.context is not None:
            env["context"] = req.context
        if req.provenance is not None:
            env["provenance"] = req.provenance
        if req.now is not None:
            env["now"] = req.now
        return env

    def evaluate_request(self, req: Request) -> Decision:
        if req.principal_attrs is None:
            principal, declared = self._declared_principal(req.principal_id), True
        else:
            principal, declared = self.policies.principal(req.principal_id, req.principal_attrs), False
        own = self._decide(req, principal, declared, req.chain)
        if not (self.attenuate and req.chain):
            return own
        chain = req.chain
        members = [
            (identity, self._decide(req, self._declared_principal(identity), True, chain[:i]))
            for i, identity in enumerate(chain)
        ]
        if own.effect == ALLOW and all(d.effect == ALLOW and not d.errors and d.credential_ttl is None for _, d in members):
            return own
        return combine(req.principal_id, own, members)

    def evaluate(self, request) -> Decision:
        return self.evaluate_request(request if isinstance(request, Request) else parse_request(request))

    def evaluate_many(self, requests) -> list[Decision]:
        evaluate = self.evaluate_request
        out = []
        append = out.append
        for i, raw in enumerate(requests):
            append(evaluate(raw if isinstance(raw, Request) else parse_request(raw, i)))
        return out


__all__ = ["CompiledPolicies", "compile_expr", "compile_condition", "RESTRICTIVENESS"]
