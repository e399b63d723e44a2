"""The curl examples of docs/service.md, run against `nhipl serve -p examples/authzen-todo`:
each answers exactly the JSON shown after it."""

from __future__ import annotations

import json
import os
import pathlib
import re
import shutil
import subprocess

import pytest

from .test_serve_process import Server

ROOT = pathlib.Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "service.md"
PAIR = re.compile(r"```sh\n((?:[A-Z]+=[^\n]*\n)*curl [^`]*?)```\n\n```json\n(.*?)```", re.S)
ANY = "…"  # in a shown answer: a value that differs on every run (a token, an id, a time)


def matches(got, shown) -> bool:
    """Whether ``got`` is the answer ``shown``, where ``"…"`` stands for any value."""
    if shown == ANY:
        return got is not None
    if isinstance(shown, dict):
        return isinstance(got, dict) and got.keys() == shown.keys() and all(matches(got[k], v) for k, v in shown.items())
    if isinstance(shown, list):
        return isinstance(got, list) and len(got) == len(shown) and all(map(matches, got, shown))
    return got == shown


def pairs():
    return PAIR.findall(DOC.read_text())


def test_the_doc_has_curl_examples_with_answers():
    assert len(pairs()) >= 5
    commands = "".join(command for command, _ in pairs())
    for endpoint in ("/v1/tasks ", "/steps", "/outputs", "/delegations", "/approvals", "/v1/credentials/introspect", "/v1/credentials/revoke", "/v1/jwks", "-X DELETE"):
        assert endpoint in commands, endpoint


def test_a_wildcard_stands_for_a_value_never_for_a_missing_one():
    assert matches({"a": "x", "b": [1]}, {"a": ANY, "b": [ANY]})
    assert not matches({"a": "x"}, {"a": ANY, "b": ANY}) and not matches({"a": None}, {"a": ANY})
    assert not matches({"a": [1, 2]}, {"a": [ANY]}) and not matches({"a": 1}, {"a": 2})


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_the_curl_examples_answer_as_shown():
    with Server([ROOT / "examples" / "authzen-todo"]) as server:
        base = f"http://127.0.0.1:{server.port}"
        for command, shown in pairs():
            done = subprocess.run(["bash", "-c", command], capture_output=True, text=True, env={**os.environ, "NHIPL": base}, timeout=60)
            assert done.returncode == 0, done.stderr
            got, want = json.loads(done.stdout), json.loads(shown.replace("http://127.0.0.1:8181", base))
            assert matches(got, want), (command, got)
