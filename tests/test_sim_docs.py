"""The Python examples of docs/simulator.md run as written, in order, sharing one namespace."""

from __future__ import annotations

from pathlib import Path

import nhipl.simulator

from .docblocks import code_blocks

DOC = Path(__file__).resolve().parent.parent / "docs" / "simulator.md"


def test_doc_examples_run(capsys):
    blocks = [block.text for block in code_blocks(DOC, "python")]
    assert len(blocks) >= 7
    namespace: dict = {}
    for block in blocks:
        exec(compile(block, str(DOC), "exec"), namespace)  # the doc's own examples, not user input


def test_doc_mentions_every_finding_subkind():
    text = DOC.read_text(encoding="utf-8")
    for kind, subkinds in nhipl.simulator.FINDING_KINDS.items():
        assert f"`{kind}`" in text
        for sub in subkinds:
            assert f"`{sub}`" in text or f"/{sub}`" in text, sub


def test_module_doctest():
    import doctest

    failures, tests = doctest.testmod(nhipl.simulator)
    assert tests > 0 and failures == 0
