"""The lint rules: a catalogue of stable codes and one check per code.

Codes never change meaning and are never reused. Each check reads the loaded
policy set (every module, imports included, so a gate in an imported policy
counts) and yields findings; the linter keeps those in the user's own files.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Iterator

from .. import ast as A
from ..errors import Span, did_you_mean
from ..fmt import format_expr, format_subject
from ..request import SCHEMA
from . import analysis as an

SEVERITIES = ("error", "warning", "note")


@dataclass(frozen=True)
class LintRule:
    code: str
    name: str
    severity: str  # default
    summary: str
    description: str
    maps: tuple[str, ...]


def _rule(code, name, severity, summary, description, *maps) -> LintRule:
    return LintRule(code, name, severity, summary, description, maps)


RULES: dict[str, LintRule] = {
    r.code: r
    for r in (
        _rule(
            "NHI001", "shared-identity", "error",
            "a sensitive tool is permitted to `any agent` or to a whole trust domain",
            "A permit whose subject is `any agent`, or an id glob over every identity or a whole "
            "SPIFFE trust domain, on a tool declared `sensitive` or tagged with a sensitive tag. "
            "Every workload then shares one broad authority: name the identities or a group.",
            "owasp-nhi:2025:NHI9", "owasp-nhi:2025:NHI5", "owasp-asi:2026:ASI03", "nist-airmf:1.0:MEASURE-2.7",
        ),
        _rule(
            "NHI002", "standing-privilege", "warning",
            "a permit grants no credential ttl, or one above the ceiling",
            "A permit without `grant ttl`, or with a ttl above `max-ttl` (default 1h), leaves standing "
            "privilege: the credential issued for the step outlives the step. A permit is exempt when "
            "every identity it names is declared with a `max_credential_ttl` within the ceiling.",
            "owasp-nhi:2025:NHI7", "owasp-nhi:2025:NHI5", "owasp-asi:2026:ASI03", "nist-airmf:1.0:MANAGE-1.3",
        ),
        _rule(
            "NHI003", "ungated-sensitive-tool", "error",
            "a sensitive tool is permitted with no approval gate",
            "A permit reaches a tool declared `sensitive` or tagged with a sensitive tag, and no "
            "`require approval` rule, no forbid conditioned on `approval.granted`, and no condition of the "
            "permit itself on `approval.granted` covers it: the step runs with no human in the loop.",
            "owasp-asi:2026:ASI02", "owasp-asi:2026:ASI09", "owasp-nhi:2025:NHI5", "nist-airmf:1.0:MAP-3.5",
            "nist-airmf:1.0:GOVERN-3.2",
        ),
        _rule(
            "NHI004", "shadowed-rule", "warning",
            "a permit or approval rule can never take effect: an unconditional forbid covers it",
            "An unconditional `forbid` whose subject, action, targets, resources and task cover the rule "
            "denies every request the rule could match, so the rule never decides anything.",
            "nist-airmf:1.0:GOVERN-1.4", "nist-airmf:1.0:MEASURE-2.7",
        ),
        _rule(
            "NHI005", "duplicate-rule", "warning",
            "a rule repeats an earlier one",
            "Two rules with the same effect, subject, action, targets, resources, task, conditions and "
            "ttl: the later one adds nothing and drifts out of step when only one is edited.",
            "nist-airmf:1.0:GOVERN-1.4",
        ),
        _rule(
            "NHI006", "subsumed-rule", "note",
            "a rule is covered by a broader rule with the same effect",
            "A broader rule with the same effect and no condition (or the same conditions) matches every "
            "request this rule matches, and for permits grants a ttl no longer than this one's, so removing "
            "this rule changes no decision's effect or ttl.",
            "nist-airmf:1.0:GOVERN-1.4",
        ),
        _rule(
            "NHI007", "unbounded-delegation", "warning",
            "`delegate` is permitted with no bound on `delegation.depth`",
            "A permit on `delegate` whose conditions never read `delegation.depth` (or `delegation.chain`), "
            "with no forbid on deep delegation covering it: chains of agents can grow without limit and "
            "failures cascade through them.",
            "owasp-asi:2026:ASI08", "owasp-asi:2026:ASI03", "owasp-nhi:2025:NHI5", "nist-airmf:1.0:MEASURE-2.7",
        ),
        _rule(
            "NHI008", "delegation-without-attenuation", "warning",
            "`delegate` is permitted but `attenuate delegation;` is not in force",
            "Without attenuation a delegatee is judged on its own permits only, so delegation can hand an "
            "agent more authority than the agents that delegated to it (a confused deputy).",
            "owasp-asi:2026:ASI03", "owasp-asi:2026:ASI07", "owasp-nhi:2025:NHI5", "nist-airmf:1.0:GOVERN-1.4",
        ),
        _rule(
            "NHI009", "unknown-attribute", "error",
            "a condition reads an attribute that nothing defines",
            "No request field, agent or tool declaration, test request, standard-library policy or other "
            "rule knows the attribute. It is probably a typo; a missing attribute is an evaluation error, "
            "which fails closed (a permit never matches, a forbid always does).",
            "nist-airmf:1.0:GOVERN-1.4", "nist-airmf:1.0:MEASURE-2.7",
        ),
        _rule(
            "NHI010", "constant-condition", "warning",
            "a condition, or part of one, is always true or always false",
            "Its value does not depend on the request (literals compared with literals, a path compared "
            "with itself, contradictory equalities, a test of `task.intent` inside a task block, a negative "
            "delegation depth): the rule is either dead or broader than it reads.",
            "nist-airmf:1.0:GOVERN-1.4",
        ),
        _rule(
            "NHI011", "empty-task", "warning",
            "a task block permits nothing",
            "A `task` block grants by its permits; one with none scopes nothing to the task, which usually "
            "means its permits were lost or written outside it.",
            "owasp-asi:2026:ASI10", "nist-airmf:1.0:GOVERN-1.4",
        ),
        _rule(
            "NHI012", "dead-rule", "note",
            "a forbid or approval rule overlaps no permit, so nothing differs with it",
            "Default deny already refuses every request the rule could match: no permit in the policy set "
            "reaches its subject, action and targets. Often a typo in a target; sometimes a deliberate "
            "guardrail kept against future permits. Not reported for a policy set that has no permit at all "
            "(a library of guards meant to be imported).",
            "nist-airmf:1.0:GOVERN-1.4",
        ),
        _rule(
            "NHI013", "case-variant-forbid", "warning",
            "a forbid's target differs only by letter case from a permitted tool",
            "Tool names are compared exactly, letter case included (after NFKC normalisation of the "
            "request), so `forbid ... \"Delete_File\"` does not stop a permitted `delete_file`. "
            "Usually a typo that leaves the tool the forbid meant to stop allowed.",
            "nist-airmf:1.0:GOVERN-1.4",
        ),
        _rule(
            "NHI014", "never-true-quantifier", "warning",
            "a quantifier can never be true",
            "An `any(...)` over the empty list `[]` or with a `where` condition that is the literal "
            "`false`, or an `all(...)` over a non-empty literal list with a `false` condition, is false "
            "for every request: usually the wrong list or a condition left over from editing.",
            "nist-airmf:1.0:GOVERN-1.4",
        ),
    )
}


@dataclass(frozen=True)
class RawFinding:
    code: str
    message: str
    span: Span | None
    anchor: Span | None  # the item a suppression comment must sit on
    rule_id: str | None = None
    help: str | None = None


# ---- facts about the policy set ----------------------------------------------------------


# The request schema's objects and their known attributes; a tool's come from its declaration.
REQUEST_ATTRS = {f.name: set(f.attrs) for f in SCHEMA if f.attrs or f.kind == "object"}
REQUEST_ATTRS["tool"] = {"name", "sensitive", "tags"}
OPEN_ROOTS = tuple(f.name for f in SCHEMA if f.open)  # keys chosen by the caller


@lru_cache(maxsize=1)
def stdlib_attrs() -> dict[str, frozenset[str]]:
    """Attributes the standard-library policies read (their documented conventions)."""
    from importlib import resources

    from ..fmt import parse_module
    from ..loader import STDLIB_PACKAGE

    found: dict[str, set[str]] = {}
    for entry in resources.files(STDLIB_PACKAGE).iterdir():
        if not entry.name.endswith(".nhipl"):
            continue
        module = parse_module(entry.read_text(encoding="utf-8"), entry.name)
        for rule in module.rules():
            for expr in (rule.when, rule.unless):
                for root, attr, _ in an.paths(expr):
                    if attr is not None:
                        found.setdefault(root, set()).add(attr)
    return {k: frozenset(v) for k, v in found.items()}


class Facts:
    """What the checks need to know about the whole policy set."""

    def __init__(self, policies, config, user_sources: set[str], lines: dict[str, list[str]] | None = None):
        self.policies = policies
        self.lines = lines or {}
        self.config = config
        self.user_sources = user_sources
        self.rules: tuple[A.Rule, ...] = policies.rules
        self.permits = [r for r in self.rules if r.effect == A.PERMIT]
        self.sensitive: list[tuple[str, str]] = []  # (pattern, why)
        for pattern, attrs in policies.tools:
            why = None
            if attrs.get("sensitive") is True:
                why = "declared `sensitive`"
            else:
                tags = attrs.get("tags")
                hit = sorted(set(tags) & config.sensitive_tags) if isinstance(tags, list) else []
                if hit:
                    why = "tagged " + ", ".join(f"`{t}`" for t in hit)
            if why:
                self.sensitive.append((pattern, why))
        self.known = {root: set(attrs) for root, attrs in REQUEST_ATTRS.items()}
        for root, attrs in stdlib_attrs().items():
            self.known.setdefault(root, set()).update(attrs)
        for attrs in policies.agents.values():
            self.known["principal"].update(attrs)
        for _, attrs in policies.tools:
            self.known["tool"].update(attrs)
        for _, test in policies.tests:
            request = A.value_to_python(test.request)
            for root, value in request.items():
                if isinstance(value, dict) and root in self.known:
                    self.known[root].update(value)
        self.used: dict[tuple[str, str], set[str]] = {}
        for rule in self.rules:
            for expr in (rule.when, rule.unless):
                for root, attr, _ in an.paths(expr):
                    if attr is not None:
                        self.used.setdefault((root, attr), set()).add(rule.id)
        self.index = RuleIndex(self.rules)
        self.shadowed: dict[str, A.Rule] = {}
        forbids = [r for r in self.rules if r.effect == A.FORBID and an.unconditional(r)]
        for rule in self.rules:
            if rule.effect == A.FORBID:
                continue
            for f in forbids:
                if an.scope_covers(f, rule):
                    self.shadowed[rule.id] = f
                    break

    def head(self, rule: A.Rule) -> Span | None:
        """Where the rule's effect keyword is (after its annotations)."""
        subject = rule.subject.span
        if subject is None:
            return rule.span
        text = self.lines.get(subject.source, [])
        line = text[subject.line - 1] if 0 < subject.line <= len(text) else ""
        before = line[: subject.column - 1]
        starts = [before.rfind(word) for word in ("permit", "forbid", "require")]
        column = max(starts) + 1 if max(starts) >= 0 else subject.column
        word_end = line.find(" ", column - 1)
        end = word_end + 1 if word_end >= 0 else subject.end_column
        return Span(subject.source, subject.line, column, subject.line, end)

    def end(self, rule: A.Rule) -> Span | None:
        """The rule's closing `;`."""
        span = rule.span
        if span is None or not span.end_column:
            return span
        return Span(span.source, span.end_line, max(1, span.end_column - 1), span.end_line, span.end_column)

    def is_user(self, span: Span | None) -> bool:
        return span is not None and span.source in self.user_sources

    def sensitive_hits(self, rule: A.Rule) -> list[tuple[str, str]]:
        if "delegate" in rule.actions and len(rule.actions) == 1:
            return []
        return [(p, why) for p, why in self.sensitive if any(an.globs_overlap(t, p) for t in rule.targets)]


def _rule_name(rule: A.Rule) -> str:
    return f"`{rule.id}`"


def _targets(rule: A.Rule) -> str:
    return ", ".join(f"`{t}`" for t in rule.targets)


def _ttl_text(seconds: int) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


# ---- the checks ----------------------------------------------------------------------------


def check_shared_identity(facts: Facts) -> Iterator[RawFinding]:
    for rule in facts.permits:
        if not facts.is_user(rule.span) or rule.id in facts.shadowed:
            continue
        why_broad = an.broad_subject(rule.subject)
        hits = facts.sensitive_hits(rule)
        if why_broad and hits:
            pattern, why = hits[0]
            yield RawFinding(
                "NHI001",
                f"permit {_rule_name(rule)} gives {why_broad} the sensitive tool `{pattern}` ({why})",
                rule.subject.span or rule.span,
                rule.span,
                rule.id,
                "name the identities (`agent \"spiffe://...\"`) or a group (`agent in \"...\"`) that need it",
            )


def _declared_ttl_ok(facts: Facts, rule: A.Rule) -> bool:
    subject = rule.subject
    if not isinstance(subject, A.AgentIds):
        return False
    for ident in subject.ids:
        attrs = facts.policies.agents.get(ident)
        ttl = attrs.get("max_credential_ttl") if attrs else None
        if "*" in ident or not isinstance(ttl, (int, float)) or isinstance(ttl, bool) or ttl > facts.config.max_ttl:
            return False
    return True


def check_standing_privilege(facts: Facts) -> Iterator[RawFinding]:
    ceiling = facts.config.max_ttl
    for rule in facts.permits:
        if not facts.is_user(rule.span) or rule.id in facts.shadowed:
            continue
        if rule.ttl is None:
            if _declared_ttl_ok(facts, rule):
                continue
            yield RawFinding(
                "NHI002",
                f"permit {_rule_name(rule)} has no `grant ttl`: standing privilege",
                facts.end(rule),
                rule.span,
                rule.id,
                f"end the rule with `grant ttl 5m` (at most {_ttl_text(ceiling)})",
            )
        elif rule.ttl.seconds > ceiling:
            yield RawFinding(
                "NHI002",
                f"permit {_rule_name(rule)} grants ttl {rule.ttl}, above the {_ttl_text(ceiling)} ceiling",
                rule.ttl.span or rule.span,
                rule.span,
                rule.id,
                f"grant at most `{_ttl_text(ceiling)}`, or raise `max-ttl` in `[tool.nhipl.lint]`",
            )


def _approval_gate(gate: A.Rule) -> bool:
    if gate.effect == A.APPROVAL:
        return True
    return gate.effect == A.FORBID and an.mentions(gate, "approval", ("granted",))


def _gated(facts: Facts, permit: A.Rule, pattern: str) -> bool:
    if an.mentions(permit, "approval", ("granted",)):
        return True
    reached = [t for t in permit.targets if an.globs_overlap(t, pattern)]
    gated: list[str] = []  # targets of every gate that applies: together they may cover the permit
    for gate in facts.rules:
        if not _approval_gate(gate) or not set(permit.actions) <= set(gate.actions) or gate.resources is not None:
            continue
        if gate.task_intent is not None and gate.task_intent != permit.task_intent:
            continue
        if not an.subject_covers(gate.subject, permit.subject):
            continue
        if an.any_covers(gate.targets, pattern):
            return True
        gated.extend(gate.targets)
    return bool(gated) and an.all_covered(tuple(gated), reached)


def check_ungated_sensitive(facts: Facts) -> Iterator[RawFinding]:
    for rule in facts.permits:
        if not facts.is_user(rule.span) or rule.id in facts.shadowed:
            continue
        for pattern, why in facts.sensitive_hits(rule):
            if not _gated(facts, rule, pattern):
                yield RawFinding(
                    "NHI003",
                    f"permit {_rule_name(rule)} reaches the sensitive tool `{pattern}` ({why}) with no approval gate",
                    facts.head(rule),
                    rule.span,
                    rule.id,
                    f"add `require approval for {format_subject(rule.subject)} to {', '.join(rule.actions)} \"{pattern}\";` "
                    "or `import \"baseline\";`",
                )
                break


def check_shadowed(facts: Facts) -> Iterator[RawFinding]:
    for rule in facts.rules:
        forbid = facts.shadowed.get(rule.id)
        if forbid is None or not facts.is_user(rule.span):
            continue
        kind = "permit" if rule.effect == A.PERMIT else "approval rule"
        yield RawFinding(
            "NHI004",
            f"{kind} {_rule_name(rule)} never takes effect: the unconditional forbid `{forbid.id}` covers it",
            facts.head(rule),
            rule.span,
            rule.id,
            f"remove one of them, or narrow `{forbid.id}` with `when`/`unless`",
        )


def _same_rule(a: A.Rule, b: A.Rule) -> bool:
    return (
        a.effect == b.effect
        and a.subject == b.subject
        and set(a.actions) == set(b.actions)
        and set(a.targets) == set(b.targets)
        and (a.resources is None) == (b.resources is None)
        and set(a.resources or ()) == set(b.resources or ())
        and a.task_intent == b.task_intent
        and an.same_conditions(a, b)
        and a.ttl == b.ttl
    )


def _conditions_key(rule: A.Rule) -> str:
    """Equal for two rules with the same conditions (:func:`~.analysis.same_conditions` compares
    the reprs too); an unconditional rule's is :data:`_UNCONDITIONAL`."""
    return repr((rule.when, rule.unless))


_UNCONDITIONAL = repr((None, None))


def _duplicate_key(rule: A.Rule) -> tuple:
    """Equal for any two rules :func:`_same_rule` calls the same (the converse need not hold)."""
    resources = None if rule.resources is None else frozenset(rule.resources)
    return (rule.effect, rule.subject, rule.action, frozenset(rule.targets), resources, rule.task_intent,
            _conditions_key(rule), rule.ttl)


def _literal_prefix(pattern: str) -> str:
    return pattern.split("*", 1)[0]


class RuleIndex:
    """The rules of a policy set bucketed so that the duplicate and subsumption checks compare
    a rule only with the few rules that could repeat or cover it, not with every rule.

    ``compare`` counts the rule-against-rule comparisons made (a regression to comparing every
    pair shows there)."""

    def __init__(self, rules: tuple[A.Rule, ...]):
        self.rules = rules
        self.position = {id(rule): i for i, rule in enumerate(rules)}
        self.comparisons = 0
        self._same: dict[tuple, list[int]] = {}
        # (effect, action, task or None, conditions) -> literal prefix of a target -> rule positions
        self._scopes: dict[tuple, dict[str, list[int]]] = {}
        for i, rule in enumerate(rules):
            self._same.setdefault(_duplicate_key(rule), []).append(i)
            by_prefix = self._scopes.setdefault((rule.effect, rule.action, rule.task_intent, _conditions_key(rule)), {})
            for prefix in {_literal_prefix(t) for t in rule.targets} or {""}:
                by_prefix.setdefault(prefix, []).append(i)

    def same(self, rule: A.Rule) -> list[A.Rule]:
        """The other rules that repeat ``rule``, in order."""
        out = []
        for i in self._same.get(_duplicate_key(rule), ()):
            other = self.rules[i]
            if other is not rule:
                self.comparisons += 1
                if _same_rule(other, rule):
                    out.append(other)
        return out

    def earlier_same(self, rule: A.Rule) -> A.Rule | None:
        """The first rule before ``rule`` that it repeats, or None."""
        mine = self.position[id(rule)]
        for i in self._same.get(_duplicate_key(rule), ()):
            if i >= mine:
                break
            self.comparisons += 1
            if _same_rule(self.rules[i], rule):
                return self.rules[i]
        return None

    def could_cover(self, narrow: A.Rule) -> list[A.Rule]:
        """In order, every rule that may cover ``narrow`` with the same effect: same action, no
        task or the same one, no conditions or the same ones, and a target whose literal
        prefix (the text before its first `*`) starts ``narrow``'s first target, which a glob
        that covers that target must have (a superset of the rules :func:`_subsumes` accepts)."""
        conditions = {_UNCONDITIONAL, _conditions_key(narrow)}
        tasks = {None, narrow.task_intent}
        if narrow.targets:
            first = _literal_prefix(narrow.targets[0])
            prefixes = [first[:k] for k in range(len(first) + 1)]
        else:
            prefixes = None
        found: set[int] = set()
        for task in tasks:
            for condition in conditions:
                by_prefix = self._scopes.get((narrow.effect, narrow.action, task, condition))
                if not by_prefix:
                    continue
                if prefixes is None:
                    found.update(i for positions in by_prefix.values() for i in positions)
                else:
                    for prefix in prefixes:
                        found.update(by_prefix.get(prefix, ()))
        return [self.rules[i] for i in sorted(found)]


def _subsumes(broad: A.Rule, narrow: A.Rule) -> bool:
    if broad.effect != narrow.effect or not an.scope_covers(broad, narrow):
        return False
    if not (an.unconditional(broad) or an.same_conditions(broad, narrow)):
        return False
    if narrow.effect == A.PERMIT and narrow.ttl is not None:
        return broad.ttl is not None and narrow.ttl.seconds >= broad.ttl.seconds
    return True


def check_duplicates(facts: Facts) -> Iterator[RawFinding]:
    index = facts.index
    duplicates: set[str] = set()
    for later in facts.rules:
        if not facts.is_user(later.span):
            continue
        earlier = index.earlier_same(later)
        if earlier is not None:
            duplicates.add(later.id)
            yield RawFinding(
                "NHI005",
                f"rule {_rule_name(later)} repeats `{earlier.id}`",
                facts.head(later),
                later.span,
                later.id,
                "remove one of the two",
            )
    for narrow in facts.rules:
        if narrow.id in duplicates or not facts.is_user(narrow.span) or narrow.id in facts.shadowed:
            continue
        for broad in index.could_cover(narrow):
            if broad is narrow:
                continue
            index.comparisons += 1
            if _same_rule(broad, narrow):
                continue
            if _subsumes(broad, narrow):
                yield RawFinding(
                    "NHI006",
                    f"rule {_rule_name(narrow)} is subsumed by `{broad.id}`, which matches every request it matches",
                    facts.head(narrow),
                    narrow.span,
                    narrow.id,
                    f"remove {_rule_name(narrow)}, or narrow `{broad.id}`",
                )
                break


def _depth_bounded(facts: Facts, permit: A.Rule) -> bool:
    if an.mentions(permit, "delegation", ("depth", "chain")):
        return True
    for gate in facts.rules:
        if gate.effect != A.FORBID or "delegate" not in gate.actions or gate.resources is not None:
            continue
        if gate.task_intent is not None and gate.task_intent != permit.task_intent:
            continue
        if (
            an.subject_covers(gate.subject, permit.subject)
            and an.all_covered(gate.targets, permit.targets)
            and an.mentions(gate, "delegation", ("depth", "chain"))
        ):
            return True
    return False


def check_delegation(facts: Facts) -> Iterator[RawFinding]:
    for rule in facts.permits:
        if "delegate" not in rule.actions or not facts.is_user(rule.span) or rule.id in facts.shadowed:
            continue
        if not _depth_bounded(facts, rule):
            yield RawFinding(
                "NHI007",
                f"permit {_rule_name(rule)} allows `delegate` with no bound on `delegation.depth`",
                facts.head(rule),
                rule.span,
                rule.id,
                "add `when delegation.depth < 3`, or `import \"baseline\";` (which forbids depth 5 and more)",
            )
        if not facts.policies.attenuate:
            yield RawFinding(
                "NHI008",
                f"permit {_rule_name(rule)} allows `delegate` but `attenuate delegation;` is not in force",
                facts.head(rule),
                rule.span,
                rule.id,
                "add `attenuate delegation;` so a delegatee never holds more authority than its delegators",
            )


def _deletions(word: str) -> set[str]:
    """``word`` and every string one deletion away: two words one edit apart share one."""
    return {word} | {word[:i] + word[i + 1:] for i in range(len(word))}


_MAX_HINT_CANDIDATES = 1000  # beyond this many names, no "did you mean" search (it would be quadratic)


def check_unknown_attributes(facts: Facts) -> Iterator[RawFinding]:
    order = {rule.id: i for i, rule in enumerate(facts.rules)}
    by_root: dict[str, dict[str, set]] = {}
    for (r, a), ids in facts.used.items():
        by_root.setdefault(r, {})[a] = ids
    first_use = {key: min(order[i] for i in ids) for key, ids in facts.used.items() if ids}
    near_index: dict[str, dict[str, set[str]]] = {}  # open root -> deletion variant -> names

    def one_edit_names(root: str, attr: str, keep) -> set[str]:
        """The names of ``root`` one edit from ``attr`` that ``keep`` accepts."""
        index = near_index.get(root)
        if index is None:
            index = near_index[root] = {}
            for name in set(by_root.get(root, {})) | set(facts.known[root]):
                for variant in _deletions(name):
                    index.setdefault(variant, set()).add(name)
        found: set[str] = set()
        for variant in _deletions(attr):
            found |= index.get(variant, set())
        return {k for k in found if keep(k) and _one_edit(attr, k)}

    for rule in facts.rules:
        if not facts.is_user(rule.span):
            continue
        seen: set[tuple[str, str]] = set()
        others: dict[str, set[str]] = {}  # root -> names some other rule uses
        for expr in (rule.when, rule.unless):
            for root, attr, node in an.paths(expr):
                if attr is None or root not in facts.known or (root, attr) in seen:
                    continue
                seen.add((root, attr))
                known = facts.known[root]
                if attr in known or facts.used.get((root, attr), set()) - {rule.id}:
                    continue
                if root in OPEN_ROOTS:
                    # a caller-chosen key: reported only one typo away from a key in use, and
                    # of two spellings, the later rule has the typo
                    mine = order[rule.id]
                    near = sorted(one_edit_names(
                        root, attr, lambda k: k in known or first_use.get((root, k), mine) < mine  # noqa: B023
                    )) if len(attr) >= 4 else []
                    if not near:
                        continue
                    hint = f"did you mean `{near[0]}`?"
                else:
                    if root not in others:
                        others[root] = {a for a, ids in by_root.get(root, {}).items() if ids - {rule.id}}
                    candidates = known | others[root]
                    hint = did_you_mean(attr, sorted(candidates)) if len(candidates) <= _MAX_HINT_CANDIDATES else None
                yield RawFinding(
                    "NHI009",
                    f"unknown attribute `{root}.{attr}`: no request field, declaration or other rule defines it",
                    node.span or rule.span,
                    rule.span,
                    rule.id,
                    hint or f"known attributes of `{root}`: " + ", ".join(f"`{a}`" for a in sorted(known)),
                )


def _one_edit(a: str, b: str) -> bool:
    """``a`` and ``b`` differ by one insertion, deletion, substitution or swap of neighbours."""
    if a == b or abs(len(a) - len(b)) > 1:
        return False
    if len(a) == len(b):
        diff = [i for i in range(len(a)) if a[i] != b[i]]
        return len(diff) == 1 or (len(diff) == 2 and diff[1] == diff[0] + 1 and a[diff[0]] == b[diff[1]] and a[diff[1]] == b[diff[0]])
    short, long = (a, b) if len(a) < len(b) else (b, a)
    return any(long[:i] + long[i + 1 :] == short for i in range(len(long)))


def check_constant_conditions(facts: Facts) -> Iterator[RawFinding]:
    for rule in facts.rules:
        if not facts.is_user(rule.span):
            continue
        for clause, expr in (("when", rule.when), ("unless", rule.unless)):
            for node, value in an.constant_parts(expr, rule.task_intent):
                whole = node is expr
                word = "true" if value else "false"
                if whole:
                    effect = {
                        ("when", True): "the `when` clause can be removed",
                        ("when", False): "the rule can never match",
                        ("unless", True): "the rule can never match",
                        ("unless", False): "the `unless` clause can be removed",
                    }[(clause, value)]
                else:
                    effect = "simplify the condition"
                yield RawFinding(
                    "NHI010",
                    f"condition `{format_expr(node)}` in {_rule_name(rule)} is always {word}",
                    node.span or rule.span,
                    rule.span,
                    rule.id,
                    effect,
                )


def check_empty_tasks(facts: Facts) -> Iterator[RawFinding]:
    for module in facts.policies.modules:
        for item in module.items:
            if isinstance(item, A.TaskBlock) and facts.is_user(item.span):
                if not any(r.effect == A.PERMIT for r in item.rules):
                    yield RawFinding(
                        "NHI011",
                        f"task block `{item.intent}` permits nothing",
                        item.span,
                        item.span,
                        None,
                        "add the permits this task needs, or remove the block",
                    )


def check_dead_rules(facts: Facts) -> Iterator[RawFinding]:
    if not facts.permits:
        return
    for rule in facts.rules:
        if rule.effect == A.PERMIT or not facts.is_user(rule.span) or rule.id in facts.shadowed:
            continue
        if not any(an.scopes_overlap(rule, p) for p in facts.permits):
            yield RawFinding(
                "NHI012",
                f"rule {_rule_name(rule)} overlaps no permit: default deny already refuses everything it matches",
                facts.head(rule),
                rule.span,
                rule.id,
                f"check its targets ({_targets(rule)}) and subject for a typo, or remove it",
            )


_MAX_CASE_PAIRS = 200_000  # glob-against-glob comparisons at most; exact names are looked up


def check_case_variant_forbids(facts: Facts) -> Iterator[RawFinding]:
    permitted: dict[str, set[str]] = {}  # lower-cased permitted target -> its spellings
    for permit in facts.permits:
        for target in permit.targets:
            permitted.setdefault(target.lower(), set()).add(target)
    globs = [t for spellings in permitted.values() for t in spellings if "*" in t]
    budget = _MAX_CASE_PAIRS
    for rule in facts.rules:
        if rule.effect != A.FORBID or not facts.is_user(rule.span):
            continue
        for target in rule.targets:
            if "*" in target:
                budget -= len(permitted)
                if budget < 0:
                    continue
                near = sorted(t for spellings in permitted.values() for t in spellings
                              if an.globs_overlap(target.lower(), t.lower()) and not an.globs_overlap(target, t))
            else:
                budget -= len(globs)
                spellings = permitted.get(target.lower(), set())
                near = sorted(t for t in spellings if t != target)
                if not near and budget >= 0:
                    near = sorted(g for g in globs if an.globs_overlap(target.lower(), g.lower()) and not an.globs_overlap(target, g))
                if any(an.globs_overlap(target, t) for t in spellings):
                    near = []
            if near:
                yield RawFinding(
                    "NHI013",
                    f"forbid {_rule_name(rule)} targets `{target}`, which differs only by letter case from the "
                    f"permitted `{near[0]}`: tool names are compared exactly, so it does not stop that tool",
                    facts.head(rule),
                    rule.span,
                    rule.id,
                    f"write the target as the tool spells it: `{near[0]}`",
                )
                break


def _never_true(node: A.Quantifier) -> str | None:
    """Why ``node`` is false for every request, or None."""
    false_where = isinstance(node.where, A.Literal) and node.where.value is False
    literal = node.source if isinstance(node.source, A.ListExpr) else None
    if node.kind == "any" and literal is not None and not literal.items:
        return "it ranges over the empty list `[]`"
    if node.kind == "any" and false_where:
        return "its `where` condition is `false`"
    if node.kind == "all" and false_where and literal is not None and literal.items:
        return "its `where` condition is `false` and its list is not empty"
    return None


def check_never_true_quantifiers(facts: Facts) -> Iterator[RawFinding]:
    for rule in facts.rules:
        if not facts.is_user(rule.span):
            continue
        for expr in (rule.when, rule.unless):
            for node in A.iter_exprs(expr) if expr is not None else ():
                why = _never_true(node) if isinstance(node, A.Quantifier) else None
                if why is not None:
                    yield RawFinding(
                        "NHI014",
                        f"`{node.kind}(...)` in {_rule_name(rule)} can never be true: {why}",
                        node.span or rule.span,
                        rule.span,
                        rule.id,
                        "check the list after `in` and the condition after `where`",
                    )


CHECKS = (
    check_shared_identity,
    check_standing_privilege,
    check_ungated_sensitive,
    check_shadowed,
    check_duplicates,
    check_delegation,
    check_unknown_attributes,
    check_constant_conditions,
    check_empty_tasks,
    check_dead_rules,
    check_case_variant_forbids,
    check_never_true_quantifiers,
)
