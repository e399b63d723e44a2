// The TextMate grammar, tokenized by VS Code's own engine (vscode-textmate with the
// oniguruma regex library), checked two ways:
//   1. pinned expectations: a few scopes per construct;
//   2. every .nhipl file in the repository: each comment, string, duration, keyword and
//      rule id found by an independent lexer carries the scope meant for it.
// Usage: node test/grammar.test.js [REPOSITORY_ROOT]. Prints a JSON summary; exit 1 on failure.
"use strict";

const fs = require("fs");
const path = require("path");
const vsctm = require("vscode-textmate");
const oniguruma = require("vscode-oniguruma");

const HERE = path.join(__dirname, "..");
const ROOT = path.resolve(process.argv[2] || path.join(HERE, "..", ".."));
const SKIP = new Set([".git", ".venv", "venv", "node_modules", "__pycache__", "build", "dist", ".hypothesis"]);

async function loadGrammar() {
  const wasm = fs.readFileSync(require.resolve("vscode-oniguruma/release/onig.wasm"));
  await oniguruma.loadWASM(wasm.buffer.slice(wasm.byteOffset, wasm.byteOffset + wasm.byteLength));
  const registry = new vsctm.Registry({
    onigLib: Promise.resolve({
      createOnigScanner: (patterns) => new oniguruma.OnigScanner(patterns),
      createOnigString: (s) => new oniguruma.OnigString(s),
    }),
    loadGrammar: async (scopeName) => {
      if (scopeName !== "source.nhipl") return null;
      const file = path.join(HERE, "syntaxes", "nhipl.tmLanguage.json");
      return vsctm.parseRawGrammar(fs.readFileSync(file, "utf8"), file);
    },
  });
  return registry.loadGrammar("source.nhipl");
}

// Each character's scopes, line by line.
function scopesOf(grammar, text) {
  const lines = text.split("\n");
  let stack = vsctm.INITIAL;
  const out = [];
  for (const line of lines) {
    const result = grammar.tokenizeLine(line, stack);
    const perChar = new Array(line.length).fill(null);
    for (const token of result.tokens) {
      for (let i = token.startIndex; i < Math.min(token.endIndex, line.length); i++) perChar[i] = token.scopes;
    }
    out.push(perChar);
    stack = result.ruleStack;
  }
  return out;
}

// The grammar's keywords, read from the parser's grammar file (the one source of truth).
function keywords() {
  const lark = fs.readFileSync(path.join(ROOT, "grammar", "nhipl.lark"), "utf8");
  const words = new Set();
  for (const m of lark.matchAll(/^_[A-Z_]+\.2: \/([a-z_]+)\(\?!/gm)) words.add(m[1]);
  for (const m of lark.matchAll(/^STRTEST\.2: \/\(([a-z|]+)\)/gm)) m[1].split("|").forEach((w) => words.add(w));
  return words;
}

// An independent lexer: comments, strings, durations, words; which strings are rule ids.
function lex(line) {
  const re = /(#.*$)|("(?:[^"\\]|\\.)*"?)|(\b[0-9]+[smhd](?![A-Za-z0-9_.]))|([A-Za-z_][A-Za-z0-9_]*)|(\S)/g;
  const out = [];
  let m;
  while ((m = re.exec(line)) !== null) {
    const kind = m[1] ? "comment" : m[2] ? "string" : m[3] ? "duration" : m[4] ? "word" : "punct";
    out.push({ kind, text: m[0], start: m.index });
  }
  return out;
}

// The request's fields (the roots of request paths): given by the Python test, which reads
// them from the request schema (`NHIPL_REQUEST_FIELDS`, a JSON list).
function requestRoots() {
  const given = process.env.NHIPL_REQUEST_FIELDS;
  if (!given) {
    throw new Error("set NHIPL_REQUEST_FIELDS to the request's fields (a JSON list)");
  }
  return new Set(JSON.parse(given));
}
const roots = requestRoots();

function check(grammar, text, words, where, failures, counts) {
  const scopes = scopesOf(grammar, text);
  const lines = text.split("\n");
  let ruleRefs = false; // inside `by "a", "b"` (which may span lines)
  let idArgs = false; // inside `@id(`
  lines.forEach((line, n) => {
    const tokens = lex(line);
    tokens.forEach((tok, k) => {
      const s = (scopes[n][tok.start] || []).join(" ");
      const prev = tokens[k - 1];
      const fail = (what) => failures.push(`${where}:${n + 1}:${tok.start + 1}: ${what}: \`${tok.text}\` has scopes ${s}`);
      if (tok.kind === "comment") {
        counts.comments++;
        if (!s.includes("comment.line.number-sign.nhipl")) fail("comment");
        return;
      }
      if (tok.kind === "string") {
        counts.strings++;
        if (!s.includes("string.quoted.double.nhipl")) fail("string");
        if (ruleRefs || idArgs) {
          counts.ruleIds++;
          if (!s.includes("entity.name.function.rule-id.nhipl")) fail("rule id");
        }
        return;
      }
      if (tok.kind === "duration") {
        counts.durations++;
        if (!s.includes("constant.numeric.duration.nhipl")) fail("duration");
      }
      if (tok.kind === "word") {
        const attribute = (prev && prev.text === ".") || (prev && prev.text === "has");
        const next = tokens[k + 1];
        const root = next && next.text === "." && next.start === tok.start + tok.text.length;
        if (root && !attribute && roots.has(tok.text)) {
          counts.paths++;
          if (!s.includes("variable.language.request.nhipl")) fail("request path");
        } else if (words.has(tok.text) && !attribute) {
          counts.keywords++;
          if (!/(keyword\.|constant\.language)/.test(s)) fail("keyword");
        }
        if (attribute && !s.includes("variable.other.property.nhipl")) fail("attribute name");
        ruleRefs = tok.text === "by" || tok.text === "except";
        idArgs = tok.text === "id" && prev && prev.text === "@";
        return;
      }
      if (tok.text === "(" && idArgs) return;
      if (tok.text === "," && (ruleRefs || idArgs)) return;
      ruleRefs = false;
      idArgs = false;
    });
  });
}

// Pinned expectations: [line text, the substring, a scope it must have, a scope it must not have].
const PINNED = [
  ["# permit any agent", "permit", "comment.line.number-sign.nhipl", "keyword.other.effect.nhipl"],
  ['import "owasp-agentic";', "import", "keyword.control.nhipl"],
  ['import "owasp-agentic";', "owasp-agentic", "string.quoted.double.nhipl"],
  ['@id("read-tickets")', "read-tickets", "entity.name.function.rule-id.nhipl"],
  ['@id("read-tickets")', "id", "storage.type.annotation.nhipl"],
  ['permit agent in "triage" to call "zendesk.read_ticket"', "permit", "keyword.other.effect.nhipl"],
  ['permit agent in "triage" to call "zendesk.read_ticket"', "zendesk.read_ticket", "string.quoted.double.nhipl", "entity.name.function.rule-id.nhipl"],
  ['permit agent in "triage" to call "zendesk.read_ticket"', " to", "keyword.control.nhipl"],
  ['require approval for any agent to call "email.send"', "approval", "keyword.other.effect.nhipl"],
  ['    when task.intent == "triage-ticket" grant ttl 5m;', "when", "keyword.control.nhipl"],
  ['    when task.intent == "triage-ticket" grant ttl 5m;', "task", "variable.language.request.nhipl", "keyword.control.nhipl"],
  ['    when task.intent == "triage-ticket" grant ttl 5m;', "intent", "variable.other.property.nhipl"],
  ['    when task.intent == "triage-ticket" grant ttl 5m;', "5m", "constant.numeric.duration.nhipl"],
  ["    when args.to endswith \"@acme.com\" and args has in", "to", "variable.other.property.nhipl", "keyword.control.nhipl"],
  ["    when args.to endswith \"@acme.com\" and args has in", " in", "variable.other.property.nhipl", "keyword.operator.word.nhipl"],
  ["    when args.to endswith \"@acme.com\" and args has in", "endswith", "keyword.operator.word.nhipl"],
  ["forbid any agent to delegate \"*\" when delegation.depth >= 3;", "3", "constant.numeric.nhipl", "constant.numeric.duration.nhipl"],
  ['    expect allow by "read-tickets", "other"', "allow", "constant.language.effect.nhipl"],
  ['    expect allow by "read-tickets", "other"', "other", "entity.name.function.rule-id.nhipl"],
  ['    because "permit is a word here";', "permit", "string.quoted.double.nhipl", "keyword.other.effect.nhipl"],
  ["permitany agent", "permitany", null, "keyword.other.effect.nhipl"],
];

async function main() {
  const grammar = await loadGrammar();
  const failures = [];
  for (const [line, needle, want, unwanted] of PINNED) {
    const at = line.indexOf(needle) + (needle.startsWith(" ") ? 1 : 0);
    const s = (scopesOf(grammar, line)[0][at] || []).join(" ");
    if (want && !s.includes(want)) failures.push(`pinned: \`${needle}\` in \`${line}\` lacks ${want} (has ${s})`);
    if (unwanted && s.includes(unwanted)) failures.push(`pinned: \`${needle}\` in \`${line}\` has ${unwanted}`);
  }
  const words = keywords();
  const counts = { files: 0, comments: 0, strings: 0, durations: 0, keywords: 0, ruleIds: 0, paths: 0 };
  const walk = (folder) => {
    for (const entry of fs.readdirSync(folder, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
      if (entry.isDirectory()) {
        if (!SKIP.has(entry.name)) walk(path.join(folder, entry.name));
      } else if (entry.name.endsWith(".nhipl")) {
        counts.files++;
        const file = path.join(folder, entry.name);
        check(grammar, fs.readFileSync(file, "utf8"), words, path.relative(ROOT, file), failures, counts);
      }
    }
  };
  walk(ROOT);
  console.log(JSON.stringify({ pinned: PINNED.length, grammarKeywords: words.size, requestRoots: roots.size, ...counts, failures: failures.slice(0, 50) }, null, 1));
  process.exit(failures.length ? 1 : 0);
}

main().catch((err) => {
  console.error(err);
  process.exit(2);
});
