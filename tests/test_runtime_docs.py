"""The examples in docs/runtime.md run as written: the Python blocks in order in one
namespace, then the shell blocks (the replay of the log they wrote)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from .docblocks import code_blocks

DOC = Path(__file__).resolve().parent.parent / "docs" / "runtime.md"
def blocks(language: str) -> list[str]:
    return [block.text for block in code_blocks(DOC, language)]


def test_runtime_doc_examples_run(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": "runtime_doc"}
    python_blocks = blocks("python")
    assert len(python_blocks) >= 4
    for code in python_blocks:
        exec(compile(code, str(DOC), "exec"), namespace)  # noqa: S102 - our own documentation
    out = capsys.readouterr().out
    assert "ticket 7: my invoice is wrong" in out
    assert "sent to customer@example.com with a 120s credential" in out
    assert "error: `tickets.read` denied" in out  # the writer holds no more than it was given
    assert "error: `email.send` denied" in out  # outside the task no permit applies
    assert "['ticket 0', 'ticket 1', 'ticket 2']" in out
    assert "[redacted]" in out and "hunter2" not in out

    records = [json.loads(line) for line in Path("decisions.log").read_text().splitlines()]
    writer_mail = next(r for r in records if r.get("tool") == "email.send" and r.get("effect") == "allow")
    assert writer_mail["chain"] == ["spiffe://acme.org/agents/support"]
    assert writer_mail["approval"] == {"granted": True, "by": "alice@acme.com"}

    env = dict(os.environ, PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""))
    for script in blocks("sh"):
        subprocess.run(["sh", "-e", "-c", script], check=True, env=env, timeout=120)
    trace = [json.loads(line) for line in Path("day.trace.jsonl").read_text().splitlines()]
    assert {"task_start", "delegate", "approval", "tool_call", "task_end"} <= {e["kind"] for e in trace}
    report = json.loads(Path("report/report.json").read_text())
    assert report["summary"]["steps"] == sum(e["kind"] in ("tool_call", "delegate") for e in trace)
