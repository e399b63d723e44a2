"""The VS Code extension: its TextMate grammar tokenized by VS Code's own engine, and
the `.vsix` it packages to. Node and the npm packages come from `.ci/run` (`npm ci`)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest

from nhipl.request import FIELDS

ROOT = Path(__file__).parent.parent
EXTENSION = ROOT / "editors" / "vscode"
NODE = shutil.which("node")

needs_node = pytest.mark.skipif(NODE is None, reason="node is not installed: the VS Code extension's tests need Node.js")


def _needs_packages() -> None:
    if not (EXTENSION / "node_modules" / "vscode-textmate").is_dir():
        pytest.fail("the extension's npm packages are missing: run `npm ci --no-audit --no-fund` in editors/vscode")


@needs_node
def test_every_policy_file_tokenizes_as_intended():
    _needs_packages()
    done = subprocess.run(
        [NODE, str(EXTENSION / "test" / "grammar.test.js"), str(ROOT)], capture_output=True, text=True, timeout=300,
        env={**os.environ, "NHIPL_REQUEST_FIELDS": json.dumps(list(FIELDS))},
    )
    assert done.returncode == 0, done.stdout + done.stderr
    summary = json.loads(done.stdout)
    assert summary["failures"] == []
    # every construct was seen, in every policy file of the repository
    skipped = {".git", ".venv", "venv", "node_modules", "__pycache__", "build", "dist", ".hypothesis"}  # as the script skips
    assert summary["files"] == len([p for p in ROOT.rglob("*.nhipl") if not skipped & set(p.relative_to(ROOT).parts)])
    for construct in ("comments", "strings", "durations", "keywords", "ruleIds", "paths"):
        assert summary[construct] > 0, construct
    assert summary["pinned"] >= 20 and summary["grammarKeywords"] >= 30


@needs_node
def test_the_extension_packages_to_a_vsix(tmp_path: Path):
    _needs_packages()
    vsce = EXTENSION / "node_modules" / "@vscode" / "vsce" / "vsce"
    out = tmp_path / "nhipl.vsix"
    done = subprocess.run(
        [NODE, str(vsce), "package", "--allow-missing-repository", "--out", str(out)],
        cwd=EXTENSION,
        capture_output=True,
        text=True,
        timeout=300,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    with zipfile.ZipFile(out) as vsix:
        names = set(vsix.namelist())
        manifest = json.loads(vsix.read("extension/package.json"))
        vsixmanifest = vsix.read("extension.vsixmanifest").decode()
        grammar = vsix.read("extension/syntaxes/nhipl.tmLanguage.json")
    assert manifest["name"] == "nhipl" and manifest["main"] == "./extension.js"
    assert manifest["contributes"]["languages"][0]["extensions"] == [".nhipl"]
    assert manifest["contributes"]["grammars"][0]["scopeName"] == "source.nhipl"
    assert manifest["contributes"]["configuration"]["properties"]["nhipl.server.args"]["default"] == ["lsp", "--stdio"]
    assert '<Identity Language="en-US" Id="nhipl" Version="0.1.0" Publisher="nhipl"' in vsixmanifest
    assert {"extension/extension.js", "extension/language-configuration.json", "extension/LICENSE.txt"} <= names
    # the client library ships inside; the test and packaging tools do not
    assert any(n.startswith("extension/node_modules/vscode-languageclient/") for n in names)
    assert not any(n.startswith(("extension/node_modules/@vscode/vsce/", "extension/test/")) for n in names)
    assert grammar == (EXTENSION / "syntaxes" / "nhipl.tmLanguage.json").read_bytes()


def test_the_language_configuration_matches_the_language():
    config = json.loads((EXTENSION / "language-configuration.json").read_text())
    assert config["comments"] == {"lineComment": "#"}
    assert ["{", "}"] in config["brackets"] and ["[", "]"] in config["brackets"]


def _doc_block(language: str) -> str:
    import re

    text = (ROOT / "docs" / "editors.md").read_text()
    return re.search(rf"```{language}\n(.*?)```", text, re.S).group(1)


def test_the_documented_editor_set_ups_start_the_server_the_extension_starts():
    import tomllib

    default = json.loads((EXTENSION / "package.json").read_text())["contributes"]["configuration"]["properties"]
    command = [default["nhipl.server.command"]["default"], *default["nhipl.server.args"]["default"]]
    helix = tomllib.loads(_doc_block("toml"))
    server = helix["language-server"]["nhipl"]
    assert [server["command"], *server["args"]] == command
    assert helix["language"][0]["file-types"] == ["nhipl"] and helix["language"][0]["language-servers"] == ["nhipl"]
    assert 'cmd = { "' + '", "'.join(command) + '" }' in _doc_block("lua")


def test_nhipl_lsp_starts_and_answers_initialize():
    import subprocess
    import sys

    pytest.importorskip("pygls", reason="the language server needs the `lsp` extra (pygls)")
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"processId": None, "rootUri": None, "capabilities": {}}})
    exit_ = json.dumps({"jsonrpc": "2.0", "method": "exit"})
    messages = "".join(f"Content-Length: {len(m)}\r\n\r\n{m}" for m in (body, exit_))
    done = subprocess.run([sys.executable, "-m", "nhipl", "lsp"], input=messages.encode(), capture_output=True, timeout=120)
    reply = done.stdout.split(b"\r\n\r\n", 1)[1]
    capabilities = json.loads(reply[: int(done.stdout.split(b"\r\n")[0].split(b":")[1])])["result"]["capabilities"]
    assert capabilities["hoverProvider"] and capabilities["definitionProvider"] and capabilities["documentFormattingProvider"]
    assert capabilities["codeLensProvider"] is not None and "nhipl.runTest" in capabilities["executeCommandProvider"]["commands"]
    assert capabilities["completionProvider"]["triggerCharacters"] == [".", '"']


def test_nhipl_lsp_without_pygls_says_how_to_install_it():
    import subprocess
    import sys

    blocked = "import sys; sys.modules['pygls'] = None; from nhipl.cli import main; main(['lsp'])"
    done = subprocess.run([sys.executable, "-c", blocked], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert "pip install 'nhipl[lsp]'" in done.stderr and "Traceback" not in done.stderr
