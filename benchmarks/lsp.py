"""How soon `nhipl lsp` shows diagnostics after an edit, on a large policy file.

Starts the real server over stdio, opens a 1,000-rule file (the shared benchmark
workload), and measures the time until the diagnostics with the linter's
findings arrive. Then it makes edits that alternately break a rule id (a
duplicate id, an error) and restore it, and for each edit measures the time from
sending the change to receiving diagnostics that reflect it (the server waits a
short debounce first; that wait is included). The linter's findings follow later
on a file this large; until they do, the server keeps showing the previous ones
on the lines the edit did not touch.

    python benchmarks/lsp.py --rules 1000 --edits 9
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

from lsprotocol import types as T
from pygls.lsp.client import LanguageClient
from pygls.uris import from_fs_path

sys.path.insert(0, str(Path(__file__).parent))
from workload import generate, to_nhipl  # noqa: E402


async def run(rules: int, edits: int) -> dict:
    text = to_nhipl(generate(rules, 10))
    folder = Path(tempfile.mkdtemp(prefix="nhipl-lsp-bench-"))
    path = folder / "policies.nhipl"
    path.write_text(text)
    uri = from_fs_path(str(path))
    published: list[tuple[float, T.PublishDiagnosticsParams]] = []
    arrived = asyncio.Event()

    client = LanguageClient("nhipl-lsp-benchmark", "1")

    @client.feature(T.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
    def diagnostics(params: T.PublishDiagnosticsParams) -> None:
        published.append((time.perf_counter(), params))
        arrived.set()

    async def wait_for(version: int, wanted, since: int) -> float:
        while True:
            for at, params in published[since:]:
                if params.version == version and wanted(params.diagnostics):
                    return at
            arrived.clear()
            await asyncio.wait_for(arrived.wait(), 600)

    await client.start_io(sys.executable, "-m", "nhipl", "lsp")
    await client.initialize_async(T.InitializeParams(capabilities=T.ClientCapabilities(), root_uri=from_fs_path(str(folder))))
    client.initialized(T.InitializedParams())
    opened = time.perf_counter()
    client.text_document_did_open(T.DidOpenTextDocumentParams(T.TextDocumentItem(uri, "nhipl", 1, text)))
    linted = await wait_for(1, lambda ds: any(str(d.code).startswith("NHI") for d in ds), 0) - opened

    first_id = text.split('@id("', 1)[1].split('"', 1)[0]
    second_id = text.split('@id("', 2)[2].split('"', 1)[0]
    broken = text.replace(f'@id("{second_id}")', f'@id("{first_id}")', 1)
    to_check = []
    for n in range(edits):
        version = n + 2
        new_text, wants_error = (broken, True) if n % 2 == 0 else (text, False)
        since = len(published)
        sent = time.perf_counter()
        client.text_document_did_change(
            T.DidChangeTextDocumentParams(
                T.VersionedTextDocumentIdentifier(version=version, uri=uri), [T.TextDocumentContentChangeWholeDocument(text=new_text)]
            )
        )

        def reflects(ds, wants_error=wants_error):
            return any(d.code == "duplicate-id" for d in ds) == wants_error

        to_check.append(await wait_for(version, reflects, since) - sent)
        await asyncio.sleep(1.0)  # the author pauses
    await client.shutdown_async(None)
    client.exit(None)
    await client.stop()
    return {
        "rules": rules,
        "chars": len(text),
        "edits": edits,
        "check_median_ms": round(1000 * statistics.median(to_check)),
        "check_max_ms": round(1000 * max(to_check)),
        "open_with_lint_ms": round(1000 * linted),
    }


def cpu_per_edit(rules: int, edits: int) -> dict:
    """The analysis's own CPU time per edit, in this process (independent of other load on the machine)."""
    from nhipl.lsp.analysis import analyse
    from nhipl.lsp.incremental import DocumentAnalyser

    text = to_nhipl(generate(rules, 10))
    path = str(Path(tempfile.mkdtemp(prefix="nhipl-lsp-bench-")) / "policies.nhipl")
    analyser = DocumentAnalyser(path)
    analyser.analyse(text)
    first_id = text.split('@id("', 1)[1].split('"', 1)[0]
    second_id = text.split('@id("', 2)[2].split('"', 1)[0]
    broken = text.replace(f'@id("{second_id}")', f'@id("{first_id}")', 1)
    incremental, whole = [], []
    for n in range(edits):
        new_text = broken if n % 2 == 0 else text
        start = time.process_time()
        analyser.analyse(new_text)
        incremental.append(time.process_time() - start)
        start = time.process_time()
        analyse(new_text, path, lint=False)
        whole.append(time.process_time() - start)
    return {
        "incremental_cpu_ms": round(1000 * statistics.median(incremental)),
        "whole_file_cpu_ms": round(1000 * statistics.median(whole)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rules", type=int, default=1000)
    parser.add_argument("--edits", type=int, default=9)
    args = parser.parse_args()
    result = asyncio.run(run(args.rules, args.edits))
    result.update(cpu_per_edit(args.rules, args.edits))
    print(
        f"{result['rules']} rules ({result['chars']:,} characters), {result['edits']} edits: "
        f"diagnostics after an edit in {result['check_median_ms']} ms median (max {result['check_max_ms']} ms); "
        f"on opening, with the linter's findings, in {result['open_with_lint_ms']} ms\n"
        f"analysis CPU per edit: {result['incremental_cpu_ms']} ms median, parsing only the changed rule "
        f"({result['whole_file_cpu_ms']} ms when the whole file is loaded again)"
    )


if __name__ == "__main__":
    main()
