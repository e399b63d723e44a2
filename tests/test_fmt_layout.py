"""The canonical layout itself: what the formatter writes for a few known inputs."""

from __future__ import annotations

from nhipl.fmt import LINE_LENGTH, format_text


def test_short_rules_stay_on_one_line():
    text = '@id("a")\npermit any agent\n    to call "x.read" grant ttl 5m;\n'
    assert format_text(text) == '@id("a")\npermit any agent to call "x.read" grant ttl 5m;\n'


def test_a_long_subject_breaks_before_to():
    ids = ", ".join(f'"spiffe://acme.org/agents/agent-number-{i}"' for i in range(3))
    out = format_text(f'permit agent {ids} to call "github.create_review_comment" on "repo:acme/*";\n')
    lines = out.splitlines()
    assert lines[0] == f"permit agent {ids}"
    assert lines[1] == '    to call "github.create_review_comment" on "repo:acme/*";'
    assert format_text(out) == out


def test_every_line_of_the_examples_fits(tmp_path):
    import pathlib

    root = pathlib.Path(__file__).parent.parent / "examples"
    for path in root.rglob("*.nhipl"):
        for number, line in enumerate(format_text(path.read_text(), str(path)).splitlines(), 1):
            # only an unbreakable string (a single long glob or `because`) may exceed the width;
            # lists inside declarations and test requests are not wrapped yet (docs/lint.md)
            if len(line) > LINE_LENGTH and "[" not in line:
                assert line.strip().count('"') <= 2 or line.lstrip().startswith("because"), f"{path}:{number}: {line}"


def test_a_long_quantifier_breaks_inside_its_where_condition():
    text = (
        'forbid any agent to call "email.send" when any(h in history where h.tool matches "vault.*"'
        ' and h.effect == "allow" and h.agent startswith "spiffe://acme.org/")  # after secrets\n'
        '    because "nothing leaves";\n'
    )
    out = format_text(text)
    assert out.splitlines()[1:4] == [
        '    when any(h in history where h.tool matches "vault.*"',
        '                            and h.effect == "allow"',
        '                            and h.agent startswith "spiffe://acme.org/")  # after secrets',
    ]
    assert format_text(out) == out
    assert all(len(line) <= LINE_LENGTH for line in out.splitlines())
