"""The examples in docs/runtime.md run as written: the Python blocks in order in one
namespace, then the shell blocks (the replay of the log they wrote)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from .docblocks import code_blocks
from .redis_server import RedisServer

DOC = Path(__file__).resolve().parent.parent / "docs" / "runtime.md"
SHARED = "redis://127.0.0.1:6379/0"  # the page's Redis: a real one on a free port stands in
def blocks(language: str) -> list[str]:
    return [block.text for block in code_blocks(DOC, language)]


def test_runtime_doc_examples_run(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": "runtime_doc"}
    python_blocks = blocks("python")
    assert len(python_blocks) >= 10
    redis = RedisServer(tmp_path) if shutil.which("redis-server") else None
    try:
        for code in python_blocks:
            if SHARED in code:
                if redis is None:
                    continue  # the shared-store example needs redis-server (.ci/run installs it)
                code = code.replace(SHARED, redis.url)
            exec(compile(code, str(DOC), "exec"), namespace)  # noqa: S102 - our own documentation
    finally:
        if redis is not None:
            redis.stop()
    out = capsys.readouterr().out
    if redis is not None:
        assert "\ndeny\nNone\n" in out  # a task continued by a second runtime on the shared store
    # A task's life: each printed line is the one the page shows under its block.
    assert "allow call:tickets.read ticket:7 300\n" in out
    assert "deny {'to': 'user', 'body': 'tool:vault.read'} forbidden by `no-secrets-out`" in out
    assert "approval_required\nallow 120\n" in out
    assert "True {'sub': 'spiffe://acme.org/agents/support'} T-1\nTrue\n" in out
    assert "was revoked: task `T-1` ended" in out
    assert "\nTrue\n" in out.split("ended")[1]  # reload revoked the vault credential
    # The guard.
    assert "ticket 7: my invoice is wrong" in out
    assert "sent to customer@example.com with a 120s credential (call:email.send)" in out
    assert "error: `tickets.read` denied" in out  # the writer holds no more than it was given
    assert "error: `email.send` denied" in out  # outside the task no permit applies
    assert "['ticket 0', 'ticket 1', 'ticket 2']" in out
    assert "[redacted]" in out and "hunter2" not in out

    records = [json.loads(line) for line in Path("decisions.log").read_text().splitlines()]
    writer_mail = next(r for r in records if r.get("tool") == "email.send" and r.get("effect") == "allow")
    assert writer_mail["chain"] == ["spiffe://acme.org/agents/support"]
    assert writer_mail["approval"] == {"granted": True, "by": "alice@acme.com"}
    runtime_log = [json.loads(line) for line in Path("decisions.jsonl").read_text().splitlines()]
    reasons = [r["reason"] for r in runtime_log if r["kind"] == "credential_revoke"]
    assert any(r.startswith("the policy context changed: the request is now deny") for r in reasons)

    env = dict(os.environ, PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""))
    for script in blocks("sh"):
        subprocess.run(["sh", "-e", "-c", script], check=True, env=env, timeout=120)
    steps = sum(r["kind"] in ("tool_call", "delegate") for r in records)
    report = json.loads(Path("report/report.json").read_text())
    assert report["summary"]["steps"] == steps
    # Replayed under the policies that made it, every step gets the effect the guard gave it.
    effects = {r["effect"] for r in records if r["kind"] in ("tool_call", "delegate")}
    denied = sum(r.get("effect") == "deny" for r in records)
    assert effects >= {"allow", "deny"}
    assert sum(f["kind"] == "overreach" and f["subkind"] == "denied" for f in report["findings"]) == denied
    assert not [f for f in report["findings"] if f["kind"] == "revocation_gap"]
    trace = [json.loads(line) for line in Path("day.trace.jsonl").read_text().splitlines()]
    assert {"task_start", "delegate", "tool_call", "task_end", "credential_issue", "credential_revoke"} <= {e["kind"] for e in trace}
    imported = json.loads(Path("report-imported/report.json").read_text())
    assert imported["summary"]["steps"] == steps
