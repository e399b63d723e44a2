"""The guard's boundary (plain JSON values, resource templates), the decision log after
rotation, and redaction of every secret format in the docs' table."""

from __future__ import annotations

import collections
import enum
import json
import os
import pathlib
import types

import pytest

import nhipl
from nhipl.errors import RequestError
from nhipl.runtime import DecisionLog, Denied, Guard, Redactor
from nhipl.runtime.guard import json_value
from nhipl.runtime.resource import ResourceError, ResourceTemplate, normalise_value

AGENT = "spiffe://acme.org/agents/ops"

POLICY = """
@id("deploy") permit any agent to call "deploy";
@id("not-prod") forbid any agent to call "deploy" when args.env == "prod";
@id("forced") permit any agent to call "sync" when args.options has force;
@id("read") permit any agent to call "read";
@id("secrets") forbid any agent to call "read" on "file:/srv/secrets/*";
"""


class Env(str, enum.Enum):
    PROD = "prod"
    DEV = "dev"


class Level(enum.IntEnum):
    HIGH = 3


@pytest.fixture
def guard():
    return Guard(nhipl.loads(POLICY), AGENT)


# -- 6: plain JSON at the boundary ----------------------------------------------------------------


def test_a_string_enum_is_its_value(guard):
    deploy = guard.wrap(lambda env: "deployed", name="deploy")
    with pytest.raises(Denied) as caught:
        deploy(Env.PROD)
    assert caught.value.decision.rules == ("not-prod",)
    assert deploy(Env.DEV) == "deployed"


def test_an_ordered_dict_is_a_dict_for_both_evaluators(guard):
    sync = guard.wrap(lambda options: "synced", name="sync")
    assert sync(collections.OrderedDict(force=True)) == "synced"
    assert sync(types.MappingProxyType({"force": True})) == "synced"
    with pytest.raises(Denied):
        sync(collections.OrderedDict(gentle=True))


def test_values_are_made_plain_json():
    value = {
        "env": Env.PROD,
        "level": Level.HIGH,
        "pair": ("a", 1),
        "nested": collections.OrderedDict(x=[("y",)]),
        "path": pathlib.PurePosixPath("/srv/a"),
    }
    plain = json_value(value)
    assert plain == {"env": "prod", "level": 3, "pair": ["a", 1], "nested": {"x": [["y"]]}, "path": "/srv/a"}
    assert type(plain["env"]) is str and type(plain["level"]) is int and type(plain["nested"]) is dict
    json.dumps(plain, allow_nan=False)


@pytest.mark.parametrize("bad", [{1, 2}, b"x", object(), float("nan"), float("inf"), {1: "a"}, {"a": {"b": frozenset()}}])
def test_what_cannot_be_plain_json_is_refused(guard, bad):
    with pytest.raises(RequestError):
        json_value({"arg": bad})
    tool = guard.wrap(lambda arg: "ran", name="read")
    with pytest.raises(RequestError):
        tool(bad)


def test_a_request_built_by_hand_is_made_plain_too(guard):
    decision = guard.check({"principal": AGENT, "tool": "deploy", "args": {"env": Env.PROD}})
    assert decision.effect == "deny"


def test_nesting_is_bounded():
    deep: list = []
    for _ in range(100):
        deep = [deep]
    with pytest.raises(RequestError, match="nested"):
        json_value(deep)


# -- 7: resource templates -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value, expected",
    [
        ("/srv//secrets/key", "/srv/secrets/key"),
        ("/srv/./secrets/./key", "/srv/secrets/key"),
        ("acme/api", "acme/api"),
        ("https://example.com//a//b", "https://example.com/a/b"),
        ("dir/", "dir/"),
        ("42", "42"),
    ],
)
def test_resource_values_are_normalised(value, expected):
    assert normalise_value(value) == expected


@pytest.mark.parametrize("value", ["/srv/public/../secrets/key", "..", "a/%2e%2e/b", "a/%252e%252e/b", "a\\..\\b", "a\x00b"])
def test_resource_values_that_climb_or_hide_are_refused(value):
    with pytest.raises(ResourceError):
        normalise_value(value)


def test_the_guard_refuses_a_resource_that_climbs_and_logs_it(tmp_path):
    guard = Guard(nhipl.loads(POLICY), AGENT, decision_log=tmp_path / "d.log")
    read = guard.wrap(lambda path: f"read {path}", name="read", resource="file:{path}")
    assert read("/srv/public/a") == "read /srv/public/a"
    with pytest.raises(Denied, match="`..`"):
        read("/srv/public/../secrets/key")
    with pytest.raises(Denied) as caught:
        read("/srv//secrets/key")
    assert caught.value.decision.rules == ("secrets",)
    records = [json.loads(x) for x in (tmp_path / "d.log").read_text().splitlines()]
    assert [r["effect"] for r in records] == ["allow", "deny", "deny"]


def test_proxy_templates_name_arguments_by_dotted_path():
    template = ResourceTemplate("repo:{arguments.owner}/{arguments.repo.name}")
    assert template.render({"owner": "acme", "repo": {"name": "api"}}) == "repo:acme/api"
    with pytest.raises(ResourceError, match="no argument"):
        template.render({"owner": "acme"})
    with pytest.raises(ResourceError, match="object"):
        ResourceTemplate("x:{arguments.a}").render({"a": {"b": 1}})
    for bad in ("x:{path}", "x:{arguments.a!r}", "x:{arguments.a:>5}", "x:{arguments[0]}", "x:{"):
        with pytest.raises(ValueError):
            ResourceTemplate(bad)


# -- 8: the decision log after rotation ----------------------------------------------------------------


def logged_tool(guard, path, func=lambda: "ran"):
    """A tool named `read`, guarded by ``guard`` with its decisions logged to ``path``."""
    guard.decision_log = DecisionLog(path)
    return guard.wrap(func, name="read")


def test_the_log_is_opened_again_after_it_is_deleted(tmp_path, guard):
    path = tmp_path / "d.log"
    tool = logged_tool(guard, path)
    tool()
    os.unlink(path)
    tool()
    assert [json.loads(x)["tool"] for x in path.read_text().splitlines()] == ["read"]
    guard.decision_log.close()


def test_the_log_is_opened_again_after_it_is_renamed(tmp_path, guard):
    path = tmp_path / "d.log"
    tool = logged_tool(guard, path)
    tool()
    os.rename(path, tmp_path / "d.log.1")
    tool()
    tool()
    assert len(path.read_text().splitlines()) == 2
    assert len((tmp_path / "d.log.1").read_text().splitlines()) == 1
    guard.decision_log.close()


def test_when_the_log_cannot_be_opened_again_calls_fail_closed(tmp_path, guard):
    folder = tmp_path / "logs"
    folder.mkdir()
    tool = logged_tool(guard, folder / "d.log")
    assert tool() == "ran"
    os.unlink(folder / "d.log")
    folder.rmdir()
    with pytest.raises(Denied, match="failing closed"):
        tool()


def test_a_lone_surrogate_in_logged_arguments_never_crashes(tmp_path, guard):
    tool = logged_tool(guard, tmp_path / "d.log", lambda text: "ran")
    assert tool("a\ud800b") == "ran"
    record = json.loads((tmp_path / "d.log").read_bytes().decode("utf-8"))
    assert record["args"] == {"text": "a?b"}


# -- 17: redaction ---------------------------------------------------------------------------------------

# (text, what must not survive): every format in the table of docs/runtime.md.
LEAKS = [
    ("https://api.example.com/cb?access_token=ya29abcdef&state=1", "ya29abcdef"),
    ("https://x.example/?a=1&refresh_token=rt-1234567", "rt-1234567"),
    ("https://app.example/#id_token=abc.def.ghi", "abc.def"),
    ("https://maps.example/api?key=XyZ12345", "XyZ12345"),
    ("https://db.example/x.json?auth=s3cr3tauth", "s3cr3tauth"),
    ("https://app.example/callback?code=4/0AX4XfWh", "0AX4XfWh"),
    ("DB_PASSWORD=hunter2", "hunter2"),
    ("export AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG", "wJalrXUtnFEMI"),
    ("GITHUB_TOKEN='abc def'", "abc def"),
    ("redis://:s3cretpw@localhost:6379/0", "s3cretpw"),
    ("postgres://app:pa/ss/word@db:5432/x", "pa/ss/word"),
    ("https://x-oauth-basic-0123456789abcdef@github.com/acme/api.git", "0123456789abcdef"),
    ("-----BEGIN PGP PRIVATE KEY BLOCK-----\n\nlQOYBGX1abc\n=abcd\n-----END PGP PRIVATE KEY BLOCK-----", "lQOYBGX1abc"),
    ("use hf_abcdefghijklmnopqrstuvwxyz0123456789", "hf_abc"),
    ("glpat-" + "xY9_" * 6, "glpat-xY9"),
    ("dop_v1_" + "0a" * 32, "dop_v1_0a0a"),
    ("shpat_" + "ab12" * 8, "shpat_ab12"),
    ("header eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9 alone", "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9"),
]


@pytest.mark.parametrize("text, secret", LEAKS)
def test_redaction_removes_every_documented_format(text, secret):
    out = Redactor().text(text)
    assert secret not in out and "[redacted" in out


def test_header_lists_as_pairs_are_redacted():
    out = Redactor().value(
        {
            "headers": [["Authorization", "Bearer abc"], ["Accept", "text/plain"]],
            "env": [{"name": "DB_PASSWORD", "value": "hunter2"}, {"name": "HOME", "value": "/root"}],
        }
    )
    assert out["headers"] == [["Authorization", "[redacted]"], ["Accept", "text/plain"]]
    assert out["env"] == [{"name": "DB_PASSWORD", "value": "[redacted]"}, {"name": "HOME", "value": "/root"}]


def test_a_jwt_split_across_fields_leaves_no_part():
    header, payload, signature = (
        "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9",
        "eyJzdWIiOiIxIn0",
        "SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c",
    )
    out = json.dumps(Redactor().value({"h": header, "p": payload, "s": signature}))
    assert header not in out and payload not in out and signature not in out


@pytest.mark.parametrize("text", ["see https://example.com/a?page=2&sort=asc", "ssh://git@github.com/acme/api", "/usr/lib/python3/key.py"])
def test_ordinary_text_is_kept(text):
    assert Redactor().text(text) == text
