"""What the editor says about the language's words: keywords and request paths.

Tests hold these tables to the grammar's keywords and the request's fields, so a
new keyword or field without an explanation here fails the suite.
"""

from __future__ import annotations

KEYWORDS: dict[str, str] = {
    "import": 'Loads another policy file with this one: `import "./common.nhipl";` (a path relative to this file) or a standard-library policy by name: `import "owasp-agentic";`.',
    "attenuate": "`attenuate delegation;` judges a delegated request for every identity in the delegation chain too; the most restrictive decision wins, so a delegatee never holds more authority than its delegators.",
    "agent": 'Declares an identity\'s attributes (`agent "spiffe://..." { groups: [...], owner: "...", max_credential_ttl: 15m }`), or names the subject of a rule: `any agent`, `agent "id", "id"`, `agent in "group"`.',
    "tool": 'Declares attributes of a tool, by exact name or glob: `tool "payments.*" { sensitive: true, tags: ["financial"] }`. In conditions, `tool.name`, `tool.sensitive`, `tool.tags` read them.',
    "permit": "A rule that allows the requests it matches, unless a matching `forbid` denies them or an approval gate holds them. Without a matching permit, a request is denied (default deny).",
    "forbid": "A rule that denies every request it matches, whatever the permits say. When its condition errors, it matches (errors fail closed).",
    "require": "`require approval for SUBJECT to ACTION ...`: a matched request that is otherwise allowed needs `approval.granted == true`, else the decision is `approval_required`. It never grants anything by itself.",
    "approval": "`require approval for`: an approval gate. In conditions, `approval.granted` and `approval.by` read the human approval attached to the step (an absent approval reads as `{granted: false}`).",
    "for": "Part of `require approval for`.",
    "any": "`any agent`: the rule applies to every identity. In conditions, `any(x in LIST where COND)` is true when COND holds for some element.",
    "where": "`any(x in LIST where COND)`, `all(...)`, `count(...)`: the condition tested on each element, which it reads as `x`, `x.field`.",
    "in": '`agent in "group"`: principals whose `groups` hold the group. In conditions, `x in [..]` or `x in list-valued-path` tests membership.',
    "to": "Introduces the rule's action and targets: `to call \"tool.glob\"`.",
    "on": 'Resources the rule applies to: `on "repo:acme/*"`. The rule does not match a request without a resource.',
    "when": "The rule's condition: it matches only when the condition is true. A condition that errors (missing attribute, wrong type) fails closed: a permit does not match, a forbid or approval gate does.",
    "unless": "The rule does not match when this condition is true. It is evaluated only when `when` is true (or absent).",
    "grant": "`grant ttl DURATION`: the longest credential the permit grants for the step (the decision's `credential_ttl` is the smallest among the determining permits and the principal's `max_credential_ttl`).",
    "ttl": "`grant ttl DURATION`: the credential lifetime a permit grants.",
    "because": "The reason shown in decisions this rule determines.",
    "task": 'A block of rules that apply only to requests whose `task.intent` is the block\'s intent: `task "code-review" { ... }`. In conditions, `task.id`, `task.intent`, `task.owner` read the task the step serves.',
    "test": 'A policy test (in `*_test.nhipl` files): `test "name" { request { ... } expect allow by "rule-id" }`.',
    "request": "The request a test decides: an object with `principal`, `tool` and the other request fields.",
    "expect": "`expect EFFECT [by \"id\", ...]`: the effect the test wants and, with `by`, the exact set of determining rules.",
    "by": "The rules a test expects to determine the decision (compared as a set).",
    "invariant": 'A property checked by searching for a counterexample: `invariant "name" { never allow to call "payments.*" when not approval.granted }`.',
    "never": "`never EFFECT ...`: the invariant fails when some request in scope gets this effect.",
    "and": "Both conditions hold (short-circuit, left to right).",
    "or": "Either condition holds (short-circuit, left to right).",
    "not": "Negation: `not (args.to endswith \"@acme.com\")`.",
    "has": "`path has name`: the attribute is present. Never errors: the safe way to test presence before reading `path.name`.",
    "true": "The boolean true.",
    "false": "The boolean false.",
    "null": "No value: a request field that is `null` counts as absent.",
    "matches": '`s matches "glob"`: the string matches a glob (`*` is any run of characters, case-sensitive, whole string).',
    "startswith": '`s startswith "prefix"`: a string test.',
    "endswith": '`s endswith "suffix"`: a string test.',
    "contains": '`s contains "part"`: a string test.',
}

# Actions a rule can name (any other name is an action of its own).
ACTIONS: dict[str, str] = {
    "call": "A tool call: the request's `tool` is the tool or API invoked.",
    "delegate": "Handing work to another agent: the request's `tool` is the delegatee's SPIFFE id.",
    "issue_credential": "Issuing a credential to the principal.",
}

# Request paths: the root's meaning and the attributes it is known to have.
PATHS: dict[str, tuple[str, tuple[str, ...]]] = {
    "principal": ("The acting workload identity: `principal.id`, and the attributes declared for it in `agent` declarations (`groups`, `owner`, `max_credential_ttl`, ...), merged under those the request gives.", ("id", "groups", "owner", "max_credential_ttl")),
    "action": ("The action: `call`, `delegate`, `issue_credential` or any name (a string).", ()),
    "tool": ("The tool or API invoked: `tool.name`, and the attributes of every matching `tool` declaration (`sensitive`, `tags`, ...).", ("name", "sensitive", "tags")),
    "resource": ("What the tool touches (`\"repo:acme/api\"`), a string; absent when the request names none.", ()),
    "args": ("The tool's arguments: `args.NAME` reads one; `args has NAME` tests presence.", ()),
    "task": ("The task the step serves: `task.id`, `task.intent` (which drives task-scoped rules), `task.owner`.", ("id", "intent", "owner")),
    "delegation": ("Who delegated to the principal: `delegation.chain` (originator first) and `delegation.depth` (its length). A missing delegation is `chain: []`, `depth: 0`.", ("chain", "depth")),
    "credential": ("The credential presented: `credential.id`, `issued_at`, `ttl`, `scope`, and `age` (`now - issued_at`, when `now` is given).", ("id", "issued_at", "ttl", "scope", "age")),
    "approval": ("A human approval attached to this step: `approval.granted` (false when absent) and `approval.by`.", ("granted", "by")),
    "context": ("Anything else the caller knows (data classification, environment, ...): `context.NAME`.", ()),
    "provenance": ("Where each argument's value came from: `provenance.NAME` is `\"user\"`, `\"tool:<name>\"` or `\"unknown\"`.", ()),
    "now": ("The time of the request, in seconds since the epoch (a number).", ()),
    "history": ("The earlier steps of the task, oldest first: objects `{t, agent, action, tool, resource?, args?, effect}`. Read it with `any(h in history where ...)`, `count(...)`, `len(history)`.", ()),
}

# Functions a condition can call (names, not keywords: only before `(`).
FUNCTIONS: dict[str, str] = {
    "any": "`any(x in LIST where COND)`: true when COND holds for some element (false on `[]`); stops at the first true one.",
    "all": "`all(x in LIST where COND)`: true when COND holds for every element (true on `[]`); stops at the first false one.",
    "count": "`count(x in LIST)`, `count(x in LIST where COND)`: how many elements (for which COND holds).",
    "keys": "`keys(o)`: an object's keys, sorted.",
    "values": "`values(o)`: an object's values, in the order of its sorted keys.",
    "len": "`len(v)`: the length of a list, a string or an object.",
}

EFFECTS = {"allow": "The request is allowed.", "deny": "The request is denied.", "approval_required": "The request needs a human approval."}

# Words that begin a top-level item, with the text completion inserts.
ITEM_SNIPPETS: dict[str, str] = {
    "permit": "permit ",
    "forbid": "forbid ",
    "require approval for": "require approval for ",
    "agent": 'agent "spiffe://" { groups: [] }',
    "tool": 'tool "" { sensitive: false }',
    "task": 'task "" {\n}',
    "test": 'test "" {\n    request { principal: "", tool: "" }\n    expect allow\n}',
    "invariant": 'invariant "" { never allow to call "" }',
    "import": 'import "";',
    "attenuate delegation": "attenuate delegation;",
    "@id": '@id("")',
}
RULE_CLAUSES = ("on", "when", "unless", "grant ttl", "because")
