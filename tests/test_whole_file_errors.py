"""A file that is missing, unreadable, a folder or a device is a problem with the whole
file, not with a place in it: every command reports it as `path: message`, exit 2, with no
made-up `:1:1:` position. Editors still get a valid range (line 1, column 1)."""

from __future__ import annotations

import importlib.util
import json
import os

import pytest

from nhipl.errors import LocatedError
from nhipl.loader import read_text
from nhipl.source import read_bytes, write_atomically

from .cli import run, write_policy

POLICY = '@id("p") permit agent in "g" to call "t.read" grant ttl 5m;\n'
REQUEST = '{"principal": "spiffe://x/a", "tool": "t.read"}'


def assert_whole_file(code: int, err: str, path, message: str) -> None:
    assert code == 2, err
    assert err.startswith(f"{path}: {message}"), err
    assert ":1:1:" not in err and "Traceback" not in err


@pytest.fixture
def policy(tmp_path):
    return write_policy(tmp_path, POLICY)


@pytest.mark.parametrize(
    "args",
    [
        ("check", "{missing}"),
        ("lint", "{missing}"),
        ("fmt", "{missing}"),
        ("test", "{missing}"),
        ("eval", "-p", "{missing}", "-r", "-"),
        ("simulate", "{missing}"),
        ("import", "agentdojo", "{missing}"),
    ],
    ids=lambda a: a[0],
)
def test_a_missing_file(tmp_path, args):
    missing = tmp_path / "nope.nhipl"
    code, _, err = run(*[a.format(missing=missing) for a in args], input=REQUEST)
    assert_whole_file(code, err, missing, "no such file")


def test_a_missing_request_file_and_a_folder_given_as_one(tmp_path, policy):
    code, _, err = run("eval", "-p", policy, "-r", tmp_path / "none.json")
    assert_whole_file(code, err, tmp_path / "none.json", "no such file")
    (tmp_path / "folder.json").mkdir()
    code, _, err = run("eval", "-p", policy, "-r", tmp_path / "folder.json")
    assert_whole_file(code, err, tmp_path / "folder.json", "is a folder, not a file")


def test_a_folder_given_as_a_trace(tmp_path, policy):
    code, _, err = run("simulate", tmp_path, "-p", policy)
    assert_whole_file(code, err, tmp_path, "is a folder, not a trace file")


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="needs /dev/zero, a device")
def test_a_device_given_as_a_policy():
    code, _, err = run("check", "/dev/zero")
    assert_whole_file(code, err, "/dev/zero", "not a regular file")


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads a file whatever its mode")
def test_an_unreadable_file(tmp_path, policy):
    policy.chmod(0)
    try:
        code, _, err = run("lint", policy)
    finally:
        policy.chmod(0o644)
    assert_whole_file(code, err, policy, "cannot read file")


def test_a_folder_without_policies(tmp_path):
    (tmp_path / "empty").mkdir()
    code, _, err = run("check", tmp_path / "empty")
    assert_whole_file(code, err, tmp_path / "empty", "folder holds no `*.nhipl` policy files")


def test_test_without_test_files(tmp_path, policy):
    code, _, err = run("test", tmp_path)
    assert_whole_file(code, err, tmp_path, "no `*_test.nhipl` files found")


@pytest.mark.skipif(importlib.util.find_spec("z3") is None, reason="nhipl analyze needs nhipl[analyze]")
def test_analyze_a_missing_file(tmp_path):
    code, _, err = run("analyze", "rules", tmp_path / "nope.nhipl")
    assert_whole_file(code, err, tmp_path / "nope.nhipl", "no such file")


def test_a_place_in_a_file_keeps_its_position(tmp_path):
    bad = write_policy(tmp_path, "\n\npermit any agent to call x;\n")
    code, _, err = run("check", bad)
    assert code == 2 and err.startswith(f"{bad}:3:26: unexpected")


def test_the_error_types_keep_a_valid_range(tmp_path):
    with pytest.raises(LocatedError) as err:
        read_bytes(str(tmp_path / "nope"))
    assert (err.value.line, err.value.location) == (None, str(tmp_path / "nope"))
    diagnostic = err.value.diagnostic()
    assert (diagnostic.span.line, diagnostic.span.column) == (1, 1)  # for editors and JSON output
    assert diagnostic.to_dict()["line"] == 1 and diagnostic.to_dict()["column"] == 1
    assert diagnostic.render() == f"{tmp_path / 'nope'}: no such file [file-not-found]"
    with pytest.raises(Exception) as loaded:
        read_text(str(tmp_path / "nope"))
    assert json.dumps([d.to_dict() for d in loaded.value.diagnostics])  # a PolicyError, serialisable


def test_writing_over_a_folder_is_a_whole_file_error(tmp_path):
    with pytest.raises(LocatedError) as err:
        write_atomically(str(tmp_path), "x", force=True)
    assert err.value.render() == f"{tmp_path}: is a folder, not a file"


@pytest.mark.skipif(importlib.util.find_spec("uvicorn") is None, reason="nhipl serve needs nhipl[serve]")
def test_serve_a_missing_policy(tmp_path):
    code, _, err = run("serve", "-p", tmp_path / "nope.nhipl", "--port", "0")
    assert_whole_file(code, err, tmp_path / "nope.nhipl", "no such file")
