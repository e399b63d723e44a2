"""Which lint configuration a policy file gets: the `nhipl.toml` or `pyproject.toml` (with
`[tool.nhipl.lint]`) nearest to the file itself, not to the current folder; `--config` for
every file when given."""

from __future__ import annotations

import json
import pathlib

import pytest

from nhipl.lint import ConfigFinder, find_config, lint_paths

from .cli import run

NO_TTL = '@id("p") permit agent in "g" to call "t.read";\n'  # NHI002, a warning by default
IGNORE_NHI002 = '[lint]\nignore = ["NHI002"]\n'
NHI002_IS_AN_ERROR = '[tool.nhipl.lint]\nseverity = { NHI002 = "error" }\n'


def put(path: pathlib.Path, text: str) -> pathlib.Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def severities(out: str) -> dict[str, list[str]]:
    """File -> the severities of its NHI002 findings."""
    found: dict[str, list[str]] = {}
    for f in json.loads(out)["findings"]:
        if f["code"] == "NHI002":
            found.setdefault(pathlib.Path(f["file"]).parent.name, []).append(f["severity"])
    return found


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_two_folders_with_their_own_configs_in_one_run(workdir):
    put(workdir / "a" / "nhipl.toml", IGNORE_NHI002)
    put(workdir / "a" / "p.nhipl", NO_TTL)
    put(workdir / "b" / "pyproject.toml", NHI002_IS_AN_ERROR)
    put(workdir / "b" / "q.nhipl", NO_TTL.replace('"p"', '"q"'))
    put(workdir / "c" / "r.nhipl", NO_TTL.replace('"p"', '"r"'))  # no config: the defaults
    code, out, err = run("lint", "a", "b", "c", "--format", "json")
    assert code == 1, err
    assert severities(out) == {"b": ["error"], "c": ["warning"]}


def test_the_config_of_the_current_folder_does_not_apply_to_files_elsewhere(workdir, monkeypatch):
    put(workdir / "here" / "nhipl.toml", IGNORE_NHI002)
    put(workdir / "there" / "p.nhipl", NO_TTL)
    monkeypatch.chdir(workdir / "here")
    code, out, _ = run("lint", "../there/p.nhipl", "--format", "json")
    assert code == 1 and severities(out) == {"there": ["warning"]}


def test_a_config_above_the_current_folder(workdir, monkeypatch):
    put(workdir / "project" / "nhipl.toml", IGNORE_NHI002)
    put(workdir / "project" / "policies" / "deep" / "p.nhipl", NO_TTL)
    monkeypatch.chdir(workdir / "project" / "policies")
    code, out, _ = run("lint", "deep/p.nhipl")
    assert (code, out.strip()) == (0, "no findings")


def test_explicit_config_wins_over_the_nearest_file(workdir):
    put(workdir / "a" / "nhipl.toml", IGNORE_NHI002)
    put(workdir / "a" / "p.nhipl", NO_TTL)
    put(workdir / "strict.toml", NHI002_IS_AN_ERROR)
    code, out, _ = run("lint", "a", "--config", "strict.toml", "--format", "json")
    assert code == 1 and severities(out) == {"a": ["error"]}


def test_nhipl_toml_wins_in_one_folder(workdir):
    put(workdir / "nhipl.toml", IGNORE_NHI002)
    put(workdir / "pyproject.toml", NHI002_IS_AN_ERROR)
    assert find_config(str(workdir)) == str(workdir / "nhipl.toml")
    code, out, _ = run("lint", put(workdir / "p.nhipl", NO_TTL).name)
    assert (code, out.strip()) == (0, "no findings")


def test_the_nearest_file_is_the_whole_configuration(workdir):
    """A nearer pyproject.toml wins over an nhipl.toml further up; settings are not merged."""
    put(workdir / "nhipl.toml", '[lint]\nignore = ["NHI002"]\nmax-ttl = "1m"\n')
    put(workdir / "sub" / "pyproject.toml", NHI002_IS_AN_ERROR)
    put(workdir / "sub" / "p.nhipl", NO_TTL)
    code, out, _ = run("lint", "sub", "--format", "json")
    assert code == 1 and severities(out) == {"sub": ["error"]}


def test_a_pyproject_without_lint_settings_is_passed_over(workdir):
    put(workdir / "nhipl.toml", IGNORE_NHI002)
    put(workdir / "sub" / "pyproject.toml", '[project]\nname = "tools"\n')
    put(workdir / "sub" / "p.nhipl", NO_TTL)
    assert find_config(str(workdir / "sub")) == str(workdir / "nhipl.toml")
    code, out, _ = run("lint", "sub/p.nhipl")
    assert (code, out.strip()) == (0, "no findings")


def test_fail_on_is_each_files_own(workdir):
    put(workdir / "lenient" / "nhipl.toml", '[lint]\nfail-on = "error"\n')
    put(workdir / "lenient" / "p.nhipl", NO_TTL)
    assert run("lint", "lenient")[0] == 0  # a warning under fail-on "error"
    put(workdir / "strict" / "q.nhipl", NO_TTL.replace('"p"', '"q"'))
    assert run("lint", "lenient", "strict")[0] == 1  # the same warning, in a file with the default


def test_each_config_file_is_read_once(workdir):
    put(workdir / "nhipl.toml", IGNORE_NHI002)
    files = [put(workdir / d / f"{d}.nhipl", f'@id("{d}") permit agent in "g" to call "t.{d}";\n') for d in ("x", "y")]
    finder = ConfigFinder()
    assert finder(str(files[0])) is finder(str(files[1]))
    assert lint_paths([str(f) for f in files], finder) == []
    assert [f.code for f in lint_paths([str(f) for f in files])] == ["NHI002", "NHI002"]  # the defaults


@pytest.mark.parametrize(
    "toml,where,message",
    [
        ("[lnt]\nignore = []\n", "nhipl.toml:1:1:", "unknown table `lnt` in `nhipl.toml`"),
        ('[lint]\nselcet = ["NHI001"]\n', "nhipl.toml:2:1:", "unknown lint setting `selcet`"),
        ('[lint]\nfail-on = "never"\n', "nhipl.toml:2:1:", "`fail-on` must be"),
        ("lint = 3\n", "nhipl.toml:1:1:", "`lint` must be a table"),
        ("[lint\n", "nhipl.toml:1:", "invalid TOML"),
    ],
)
def test_a_bad_nhipl_toml_is_bad_input(workdir, toml, where, message):
    put(workdir / "nhipl.toml", toml)
    code, out, err = run("lint", put(workdir / "p.nhipl", NO_TTL).name)
    assert code == 2 and out == "" and err.startswith(where) and message in err, err


def test_a_broken_pyproject_on_the_way_up_is_bad_input(workdir):
    put(workdir / "pyproject.toml", "[tool.nhipl\n")
    put(workdir / "sub" / "p.nhipl", NO_TTL)
    code, _, err = run("lint", "sub/p.nhipl")
    assert code == 2 and err.startswith("pyproject.toml:1:") and "invalid TOML" in err


def test_the_language_server_finds_the_same_file(workdir):
    analysis = pytest.importorskip("nhipl.lsp.analysis", reason="the language server needs nhipl[lsp]")
    put(workdir / "nhipl.toml", IGNORE_NHI002)
    put(workdir / "pyproject.toml", NHI002_IS_AN_ERROR)
    path = put(workdir / "sub" / "p.nhipl", NO_TTL)
    assert "NHI002" not in analysis.lint_config_for(str(path)).enabled
