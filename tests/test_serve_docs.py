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
PAIR = re.compile(r"```sh\n(curl [^`]*?)```\n\n```json\n(.*?)```", re.S)


def pairs():
    return PAIR.findall(DOC.read_text())


def test_the_doc_has_curl_examples_with_answers():
    assert len(pairs()) >= 5


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_the_curl_examples_answer_as_shown():
    with Server([ROOT / "examples" / "authzen-todo"]) as server:
        base = f"http://127.0.0.1:{server.port}"
        for command, shown in pairs():
            done = subprocess.run(["bash", "-c", command], capture_output=True, text=True, env={**os.environ, "NHIPL": base}, timeout=60)
            assert done.returncode == 0, done.stderr
            assert json.loads(done.stdout) == json.loads(shown.replace("http://127.0.0.1:8181", base)), command
