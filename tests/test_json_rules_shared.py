"""The MCP proxy's JSON-RPC framing reads numbers by the core's strict rules (one decoder
factory in `nhipl.jsontext`), plus its own: integers a peer reads exactly, no duplicate keys."""

from __future__ import annotations

import pytest

from nhipl import jsontext
from nhipl.runtime.jsonrpc import SAFE_INTEGER, FrameError, parse_line


@pytest.mark.parametrize("number", ["NaN", "Infinity", "-Infinity", "1e400", "-1e999"])
def test_the_same_non_finite_numbers_are_refused_for_the_same_reason(number):
    with pytest.raises(jsontext.Refused) as core:
        jsontext.loads(f'{{"a": {number}}}')
    with pytest.raises(FrameError) as framing:
        parse_line(f'{{"jsonrpc": "2.0", "id": 1, "a": {number}}}'.encode())
    assert framing.value.reason == f"parse error: {core.value}"
    assert framing.value.request_id == 1


def test_the_integer_limits():
    decode = jsontext.strict_decoder(integer_limit=SAFE_INTEGER).decode
    assert decode(str(SAFE_INTEGER)) == SAFE_INTEGER and decode(str(-SAFE_INTEGER)) == -SAFE_INTEGER
    for text in (str(SAFE_INTEGER + 1), str(-SAFE_INTEGER - 1), "1" * 400):
        with pytest.raises(jsontext.Refused, match="an integer is too large"):
            decode(text)
    assert jsontext.loads(str(SAFE_INTEGER + 1)) == SAFE_INTEGER + 1  # the core's own bound is wider
    with pytest.raises(FrameError, match="an integer is too large"):
        parse_line(b'{"jsonrpc": "2.0", "id": 9007199254740992}')


def test_duplicate_keys_and_lone_surrogates_in_framing():
    with pytest.raises(FrameError, match="duplicate key `Name`"):
        parse_line(b'{"jsonrpc": "2.0", "id": 1, "name": 1, "Name": 2}')
    with pytest.raises(FrameError, match="lone UTF-16 surrogate"):
        parse_line(b'{"jsonrpc": "2.0", "id": 1, "\\ud800": 2}')
    assert jsontext.has_lone_surrogate({"\ud800": 1}) and not jsontext.has_lone_surrogate({"a": ["\U0001f600"]})
