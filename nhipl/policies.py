"""The loaded policy set and its public evaluation API."""

from __future__ import annotations

import gc
from contextlib import contextmanager

from . import ast as A
from .argschema import ArgSchema, schema_of
from .decision import Decision
from .errors import RequestError
from .values import glob, type_name


@contextmanager
def collector_paused():
    """Loading and compiling allocate hundreds of thousands of objects and no
    reference cycles; the cyclic garbage collector's full passes over them would
    double the load time of a large policy set."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


class Policies:
    """Policies loaded from one or more modules, ready to evaluate.

    ``rules`` are in load order (imports before the files that import them).
    """

    def __init__(self, modules: list[A.Module]):
        self.modules: tuple[A.Module, ...] = tuple(modules)
        rules: list[A.Rule] = []
        agents: dict[str, dict] = {}
        tools: list[tuple[str, dict]] = []
        schemas: list[ArgSchema] = []
        tests: list[tuple[A.Module, A.Test]] = []
        invariants: list[tuple[A.Module, A.Invariant]] = []
        credential_invariants: list[tuple[A.Module, A.CredentialInvariant]] = []
        attenuate = False
        for module in self.modules:
            for item in module.items:
                if isinstance(item, A.Rule):
                    rules.append(item)
                elif isinstance(item, A.TaskBlock):
                    rules.extend(item.rules)
                elif isinstance(item, A.AgentDecl):
                    attrs = agents.setdefault(item.id, {})
                    attrs.update({e.key: A.value_to_python(e.value) for e in item.entries})
                elif isinstance(item, A.ToolDecl):
                    tools.append((item.pattern, {e.key: A.value_to_python(e.value) for e in item.entries if e.key != "args"}))
                    schema = schema_of(item)
                    if schema is not None:
                        schemas.append(schema)
                elif isinstance(item, A.Attenuate):
                    attenuate = True
                elif isinstance(item, A.Test):
                    tests.append((module, item))
                elif isinstance(item, A.Invariant):
                    invariants.append((module, item))
                elif isinstance(item, A.CredentialInvariant):
                    credential_invariants.append((module, item))
        self.rules: tuple[A.Rule, ...] = tuple(rules)
        self.agents = agents
        self.tools = tuple(tools)
        self.tests = tuple(tests)
        self.invariants = tuple(invariants)
        self.credential_invariants = tuple(credential_invariants)  # `never grant ttl > D`
        self.attenuate = attenuate
        # argument schemas, in declaration order (the last matching one applies); None when no tool declares one
        self.schemas: tuple[ArgSchema, ...] | None = tuple(schemas) or None
        self._schema_cache: dict[str, ArgSchema | None] = {}
        self._by_id = {r.id: r for r in self.rules}
        self._tool_cache: dict[str, dict] = {}
        self._compiled = None

    def __repr__(self) -> str:
        return f"<Policies: {len(self.rules)} rules from {len(self.modules)} modules>"

    def __len__(self) -> int:
        return len(self.rules)

    def rule(self, rule_id: str) -> A.Rule:
        return self._by_id[rule_id]

    @property
    def sources(self) -> tuple[str, ...]:
        return tuple(m.source for m in self.modules)

    # -- attributes ------------------------------------------------------------------------
    def principal(self, principal_id: str, request_attrs: dict | None) -> dict:
        """Declared attributes of ``principal_id`` with the request's over them, plus ``id``."""
        merged = dict(self.agents.get(principal_id, ()))
        if request_attrs:
            merged.update(request_attrs)
        merged["id"] = principal_id
        return merged

    def tool_attrs(self, tool: str) -> dict:
        """Attributes of every tool declaration matching ``tool``, later over earlier."""
        attrs = self._tool_cache.get(tool)
        if attrs is None:
            attrs = {}
            for pattern, declared in self.tools:
                if glob(pattern).match(tool):
                    attrs.update(declared)
            if len(self._tool_cache) > 100_000:
                self._tool_cache.clear()
            self._tool_cache[tool] = attrs
        return attrs

    def schema(self, tool: str) -> ArgSchema | None:
        """The argument schema of ``tool``: the last matching declaration that states one."""
        if self.schemas is None:
            return None
        if tool in self._schema_cache:
            return self._schema_cache[tool]
        found = None
        for schema in self.schemas:
            if glob(schema.pattern).match(tool):
                found = schema
        if len(self._schema_cache) > 100_000:
            self._schema_cache.clear()
        self._schema_cache[tool] = found
        return found

    # -- evaluation -------------------------------------------------------------------------
    @property
    def compiled(self):
        if self._compiled is None:
            from .compile import CompiledPolicies

            with collector_paused():
                self._compiled = CompiledPolicies(self)
        return self._compiled

    def evaluate(self, request, explain: bool = False) -> Decision:
        """Decide one request (a dict). Raises RequestError on bad input. With
        ``explain=True`` the decision keeps the policies and the request, so that
        ``decision.explain()`` can say why, rule by rule."""
        compiled = self._compiled
        decision = (compiled if compiled is not None else self.compiled).evaluate(request)
        return tuple.__new__(Decision, (*decision[:7], self, request)) if explain else decision

    def explain(self, request):
        """:meth:`Decision.explain` of ``request``: the rule-by-rule explanation."""
        from .explanation import explain

        return explain(self, request)

    def evaluate_many(self, requests) -> list[Decision]:
        """Decide many requests; the fast path for replay and CI."""
        if requests is None or isinstance(requests, (str, bytes, dict)) or not hasattr(requests, "__iter__"):
            raise RequestError(f"requests must be a list of JSON objects, not {type_name(requests)}")
        return self.compiled.evaluate_many(requests)
