"""`nhipl lint`: exit codes, the three output formats, SARIF 2.1.0 validity
(against the vendored OASIS schema), configuration from pyproject.toml, bad input."""

from __future__ import annotations

import json
import pathlib

import jsonschema
import pytest

from nhipl.lint import RULES

from .cli import run

SCHEMA = json.loads((pathlib.Path(__file__).parent / "data" / "sarif" / "sarif-schema-2.1.0.json").read_text(encoding="utf-8"))
CLEAN = '@id("p") permit agent in "g" to call "t.read" grant ttl 5m;\n'
FINDINGS = (
    'tool "payments.*" { sensitive: true }\n'
    '@id("pay") permit any agent to call "payments.send";\n'
    '@id("typo") permit agent in "g" to call "t.write" when task.intnet == "x" grant ttl 5m;\n'
)




@pytest.fixture
def workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no pyproject.toml of the repository gets picked up
    return tmp_path


def write(folder: pathlib.Path, name: str, text: str) -> str:
    (folder / name).write_text(text, encoding="utf-8")
    return name


def test_clean_policy_exits_0(workdir):
    code, out, _ = run("lint", write(workdir, "p.nhipl", CLEAN))
    assert (code, out.strip()) == (0, "no findings")


def test_findings_exit_1_with_text(workdir):
    code, out, _ = run("lint", write(workdir, "p.nhipl", FINDINGS))
    assert code == 1
    assert "p.nhipl:2:12: error: permit `pay` reaches the sensitive tool" in out
    assert "[NHI002 standing-privilege]" in out
    assert "help: did you mean `intent`?" in out
    assert out.rstrip().endswith("4 findings: 3 errors, 1 warning, 0 notes")


def test_json_output(workdir):
    code, out, _ = run("lint", write(workdir, "p.nhipl", FINDINGS), "--format", "json")
    data = json.loads(out)
    assert code == 1
    assert data["summary"] == {"findings": 4, "error": 3, "warning": 1, "note": 0}
    first = data["findings"][0]
    assert {k: first[k] for k in ("code", "file", "line", "column", "rule")} == {
        "code": "NHI003", "file": "p.nhipl", "line": 2, "column": 12, "rule": "pay",
    }
    assert "owasp-asi:2026:ASI02" in first["maps"]


def test_sarif_validates_against_the_2_1_0_schema(workdir):
    (workdir / "policies").mkdir()
    write(workdir / "policies", "p.nhipl", FINDINGS)
    code, out, _ = run("lint", "policies", "--format", "sarif")
    log = json.loads(out)
    jsonschema.Draft4Validator(SCHEMA).validate(log)
    assert code == 1 and log["version"] == "2.1.0"
    run_ = log["runs"][0]
    rules = run_["tool"]["driver"]["rules"]
    assert [r["id"] for r in rules] == sorted(RULES)
    for rule in rules:  # what GitHub code scanning shows
        assert rule["shortDescription"]["text"] and rule["fullDescription"]["text"] and rule["help"]["text"]
        assert rule["defaultConfiguration"]["level"] in ("error", "warning", "note")
        assert float(rule["properties"]["security-severity"]) > 0
    result = run_["results"][0]
    assert rules[result["ruleIndex"]]["id"] == result["ruleId"]
    location = result["locations"][0]["physicalLocation"]
    assert location["artifactLocation"]["uri"] == "policies/p.nhipl"
    assert location["region"]["startLine"] == 2 and location["region"]["startColumn"] == 12


def test_sarif_without_findings_is_valid(workdir):
    code, out, _ = run("lint", write(workdir, "p.nhipl", CLEAN), "--format", "sarif")
    log = json.loads(out)
    jsonschema.Draft4Validator(SCHEMA).validate(log)
    assert code == 0 and log["runs"][0]["results"] == []


def test_schema_rejects_a_broken_log():
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft4Validator(SCHEMA).validate({"version": "2.1.0", "runs": [{"results": []}]})


@pytest.mark.parametrize("example", sorted(p.name for p in (pathlib.Path(__file__).parent.parent / "examples").iterdir() if list(p.glob("*.nhipl"))))
def test_examples_lint_without_bad_input(example):
    path = pathlib.Path(__file__).parent.parent / "examples" / example
    code, out, err = run("lint", str(path), "--format", "sarif")
    assert code in (0, 1), err
    jsonschema.Draft4Validator(SCHEMA).validate(json.loads(out))


# ---- configuration ----------------------------------------------------------------------


def test_pyproject_config_is_found_above_the_current_folder(workdir, monkeypatch):
    write(workdir, "pyproject.toml", '[tool.nhipl.lint]\nignore = ["NHI002"]\nseverity = { NHI009 = "warning" }\n')
    (workdir / "sub").mkdir()
    write(workdir / "sub", "p.nhipl", FINDINGS)
    monkeypatch.chdir(workdir / "sub")
    code, out, _ = run("lint", "p.nhipl", "--format", "json")
    data = json.loads(out)
    assert code == 1 and "NHI002" not in {f["code"] for f in data["findings"]}
    assert {f["severity"] for f in data["findings"] if f["code"] == "NHI009"} == {"warning"}


def test_fail_on_and_max_ttl(workdir):
    write(workdir, "pyproject.toml", '[tool.nhipl.lint]\nfail-on = "error"\nmax-ttl = "1m"\n')
    code, out, _ = run("lint", write(workdir, "p.nhipl", CLEAN))
    assert code == 0 and "grants ttl 5m, above the 1m ceiling" in out  # a warning only


def test_explicit_config_file(workdir):
    write(workdir, "lint.toml", '[tool.nhipl.lint]\nselect = ["NHI001"]\n')
    code, _, _ = run("lint", write(workdir, "p.nhipl", '@id("p") permit agent in "g" to call "x";\n'), "--config", "lint.toml")
    assert code == 0


@pytest.mark.parametrize(
    "toml,where,message",
    [
        ('[tool.nhipl.lint]\nselcet = ["NHI001"]\n', ":2:1:", "unknown lint setting `selcet`"),
        ('[tool.nhipl.lint]\nignore = ["NHI999"]\n', ":2:1:", "unknown lint rule `NHI999` in `ignore`"),
        ('[tool.nhipl.lint]\nseverity = { NHI002 = "loud" }\n', ":2:", "severity of `NHI002` must be"),
        ('[tool.nhipl.lint]\nmax-ttl = "an hour"\n', ":2:1:", "`max-ttl` must be a duration"),
        ('[tool.nhipl.lint]\nmax-ttl = true\n', ":2:1:", "`max-ttl` must be a duration"),
        ('[tool.nhipl.lint]\nfail-on = "never"\n', ":2:1:", "`fail-on` must be"),
        ('[tool.nhipl.lint]\nsensitive-tags = "pii"\n', ":2:1:", "`sensitive-tags` must be a list"),
        ("[tool.nhipl.lint\nx = 1\n", ":1:", "invalid TOML"),
    ],
)
def test_bad_config_is_bad_input(workdir, toml, where, message):
    write(workdir, "pyproject.toml", toml)
    code, out, err = run("lint", write(workdir, "p.nhipl", CLEAN))
    assert code == 2 and out == ""
    assert err.startswith("pyproject.toml" + where), err
    assert message in err and "Traceback" not in err


def test_did_you_mean_for_settings(workdir):
    write(workdir, "pyproject.toml", '[tool.nhipl.lint]\nmax_ttl = "1h"\n')
    _, _, err = run("lint", write(workdir, "p.nhipl", CLEAN))
    assert "did you mean `max-ttl`?" in err


# ---- bad input -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text,message",
    [
        ("permit any agent to call x;", "p.nhipl:1:26: unexpected"),
        ('permit any agent to call "x" when foo.bar == 1;', "unknown request path `foo`"),
        ("\x00", "NUL byte"),
    ],
)
def test_bad_policy_is_exit_2(workdir, text, message):
    code, out, err = run("lint", write(workdir, "p.nhipl", text))
    assert code == 2 and out == "" and message in err and "Traceback" not in err


def test_missing_file_and_bad_format(workdir):
    code, _, err = run("lint", "nope.nhipl")
    assert code == 2 and "nope.nhipl: no such file" in err
    code, _, err = run("lint", write(workdir, "p.nhipl", CLEAN), "--format", "xml")
    assert code == 2 and "xml" in err
