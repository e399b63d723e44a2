"""`nhipl fmt`: rewriting, --check, --diff, stdin, folders, exit codes, and
the promise never to leave a file half-written or to write a wrong result."""

from __future__ import annotations

import os
import pathlib
import stat

import pytest

import nhipl.fmt as fmt_module
from nhipl.fmt import FormatError, format_text

from .cli import run, write_policy

MESSY = '# head\n@id("p")   permit agent in "g" to call "t.read","t.list"\n  grant ttl 5m ;  # why\n'
CANONICAL = '# head\n@id("p")\npermit agent in "g" to call "t.read", "t.list" grant ttl 5m;  # why\n'




@pytest.fixture
def messy(tmp_path):
    return write_policy(tmp_path, MESSY)


def test_format_text():
    assert format_text(MESSY) == CANONICAL
    assert format_text(CANONICAL) == CANONICAL


def test_fmt_rewrites_the_file(messy):
    code, _, err = run("fmt", str(messy))
    assert code == 0 and f"reformatted {messy}" in err
    assert messy.read_text(encoding="utf-8") == CANONICAL
    code, _, err = run("fmt", str(messy))
    assert code == 0 and "0 files reformatted, 1 unchanged" in err


def test_check_writes_nothing_and_exits_1(messy):
    code, out, err = run("fmt", "--check", str(messy))
    assert (code, out) == (1, "") and f"would reformat {messy}" in err
    assert messy.read_text(encoding="utf-8") == MESSY
    messy.write_text(CANONICAL, encoding="utf-8")
    assert run("fmt", "--check", str(messy))[0] == 0


def test_diff_prints_a_unified_diff(messy):
    code, out, _ = run("fmt", "--diff", str(messy))
    assert code == 1 and messy.read_text(encoding="utf-8") == MESSY
    assert out.startswith(f"--- {messy}\toriginal\n+++ {messy}\tformatted\n")
    assert "+permit agent in \"g\" to call \"t.read\", \"t.list\" grant ttl 5m;  # why" in out


def test_stdin_to_stdout():
    code, out, _ = run("fmt", "-", input=MESSY)
    assert (code, out) == (0, CANONICAL)
    assert run("fmt", "--check", "-", input=MESSY)[0] == 1


def test_folders_are_walked(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "x.nhipl").write_text(MESSY, encoding="utf-8")
    (tmp_path / "a" / "x_test.nhipl").write_text(MESSY, encoding="utf-8")
    (tmp_path / "a" / "notes.txt").write_text("not a policy", encoding="utf-8")
    code, _, err = run("fmt", "--check", str(tmp_path))
    assert code == 1 and err.count("would reformat") == 2


def test_bad_input_exit_2_and_the_file_is_untouched(tmp_path, messy):
    bad = tmp_path / "bad.nhipl"
    bad.write_text("permit any agent to call x;\n", encoding="utf-8")
    code, _, err = run("fmt", str(bad), str(messy))
    assert code == 2 and f"{bad}:1:26:" in err and "Traceback" not in err
    assert bad.read_text(encoding="utf-8") == "permit any agent to call x;\n"
    assert messy.read_text(encoding="utf-8") == CANONICAL  # the good file is still formatted
    code, _, err = run("fmt", str(tmp_path / "missing.nhipl"))
    assert code == 2 and "no such file" in err


def test_permissions_kept_and_no_temporary_files_left(messy):
    os.chmod(messy, 0o640)
    run("fmt", str(messy))
    assert stat.S_IMODE(os.stat(messy).st_mode) == 0o640
    assert sorted(p.name for p in messy.parent.iterdir()) == ["p.nhipl"]


def test_symlink_target_is_rewritten(messy):
    link = messy.parent / "link.nhipl"
    link.symlink_to(messy.name)
    run("fmt", str(link))
    assert link.is_symlink() and messy.read_text(encoding="utf-8") == CANONICAL


def test_a_failed_write_leaves_the_original(messy, monkeypatch):
    def broken_replace(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(fmt_module.os, "replace", broken_replace)
    code, _, err = run("fmt", str(messy))
    assert code == 2 and "cannot write file: no space left on device" in err
    assert messy.read_text(encoding="utf-8") == MESSY
    assert sorted(p.name for p in messy.parent.iterdir()) == ["p.nhipl"]


def test_a_result_that_would_change_the_policies_is_never_written(messy, monkeypatch):
    real = fmt_module.format_module

    def lossy(module, text):
        return real(module, text).replace('"t.list"', '"t.lost"')

    monkeypatch.setattr(fmt_module, "format_module", lossy)
    with pytest.raises(FormatError):
        format_text(MESSY, "p.nhipl")
    code, _, err = run("fmt", str(messy))
    assert code == 2 and "formatting would change the policies; file left unchanged" in err
    assert messy.read_text(encoding="utf-8") == MESSY


def test_a_result_that_drops_a_comment_is_never_written(messy, monkeypatch):
    real = fmt_module.format_module
    monkeypatch.setattr(fmt_module, "format_module", lambda m, t: real(m, t).replace("  # why", ""))
    code, _, err = run("fmt", str(messy))
    assert code == 2 and "comments" in err and messy.read_text(encoding="utf-8") == MESSY


@pytest.mark.parametrize(
    "text,expected",
    [
        ('permit any agent to call "x" when not (a.b == 1);', None),  # unknown root: fmt does not check
        # a float without exponent notation (the grammar has none), same value
        ("permit any agent to call \"x\" when args.n == 100000000000000000000000.5;", "100000000000000010000000.0"),
        ('agent "a" { "odd key": 1, tool: 2 }', 'agent "a" { "odd key": 1, tool: 2 }\n'),
        ('permit any agent to call "\\u00e9";', 'permit any agent to call "é";\n'),
        ("permit any agent to call \"x\" when (args.a or args.b) and (args.c or (args.d and args.e));",
         'permit any agent to call "x" when (args.a or args.b) and (args.c or args.d and args.e);\n'),
        ("task \"t\" {\n}\n", 'task "t" {\n}\n'),
        ("", ""),
        ("# only a comment", "# only a comment\n"),
    ],
)
def test_edge_cases(text, expected):
    once = format_text(text)
    assert format_text(once) == once
    if expected is not None:
        assert expected in once if expected.endswith("0") else once == expected


def test_a_lone_surrogate_is_a_load_error_not_formatted(tmp_path):
    # it cannot be written as UTF-8, so no policy string may hold one (nor any JSON input)
    path = tmp_path / "s.nhipl"
    path.write_text('permit any agent to call "\\u00e9\\t\\ud800";\n')
    code, _, err = run("fmt", "--check", str(path))
    assert code == 2 and "lone surrogate" in err and "[invalid-string]" in err


def test_crlf_and_bom_become_plain_lf(tmp_path):
    path = tmp_path / "w.nhipl"
    path.write_bytes(b'\xef\xbb\xbf# win\r\n@id("p") permit agent in "g" to call "t" grant ttl 5m;\r\n')
    run("fmt", str(path))
    assert path.read_bytes() == b'# win\n@id("p")\npermit agent in "g" to call "t" grant ttl 5m;\n'


EXAMPLES = pathlib.Path(__file__).parent.parent / "examples"


def test_check_on_formatted_examples_copy(tmp_path):
    # format a copy of the examples, then --check agrees it is canonical
    import shutil

    copy = tmp_path / "examples"
    shutil.copytree(EXAMPLES, copy)
    assert run("fmt", str(copy))[0] == 0
    assert run("fmt", "--check", str(copy))[0] == 0
