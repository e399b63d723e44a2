"""nhipl.jsontext: the one place user JSON is decoded into values or a located error."""

from __future__ import annotations

import pytest

from nhipl.jsontext import JSONTextError, parse_json, parse_json_documents


def test_one_value_and_json_lines():
    assert parse_json_documents('{"a": [1,\n 2]}') == [(1, {"a": [1, 2]})]
    assert parse_json_documents('{"a": 1}\n\n{"b": 2}\n') == [(1, {"a": 1}), (3, {"b": 2})]


@pytest.mark.parametrize(
    "text, where, reason",
    [
        ('{"a": 1}\n{"b": }\n', (2, 7), "expecting value"),  # a JSON-lines line: its own line, its column
        ('{"a":\n  }', (2, 3), "expecting value"),  # one value over lines: the whole text's position
        ("[" * 100_000 + "]" * 100_000, (1, 1), "nested too deeply"),
    ],
)
def test_errors_name_their_place(text, where, reason):
    with pytest.raises(JSONTextError) as info:
        parse_json_documents(text)
    assert (info.value.line, info.value.column) == where
    assert info.value.reason == reason and info.value.message == f"invalid JSON: {reason}"


def test_deep_nesting_inside_a_json_line_is_located_on_its_line():
    with pytest.raises(JSONTextError) as info:
        parse_json_documents('{"a": 1}\n{"b": 2}\n' + "[" * 100_000 + "]" * 100_000)
    assert (info.value.line, info.value.column, info.value.reason) == (3, 1, "nested too deeply")


def test_parse_json():
    assert parse_json(b'{"a": null}') == {"a": None}
    with pytest.raises(JSONTextError, match="invalid JSON: extra data"):
        parse_json("1 2")
