"""Runtime overhead: the guard against bare ``evaluate``, and the MCP proxy's added latency.

Guard (in-process, per call, ``perf_counter_ns`` around each call, garbage collector off):

* ``evaluate``: ``policies.evaluate(request)`` on the request the guard builds;
* ``guard.check``: evaluate plus the guard's bookkeeping, no log;
* ``guarded call``: a decorated sync tool: build the request from identity, task,
  delegation chain and bound arguments, decide, set the decision context, run the tool;
* ``guarded call + log``: the same, appending each decision (redacted) to a log file;
* ``guarded async call + log``: an async tool, awaited in an event loop.

Proxy (out of process): a stdlib JSON-RPC server answers ``tools/call`` at once; a raw
JSON-RPC client sends calls one at a time and times each round trip, first straight to
the server, then through ``nhipl mcp-proxy`` (with and without ``--log``). The added
latency is the difference of the percentiles.

    .venv/bin/python benchmarks/guard_overhead.py
    .venv/bin/python benchmarks/guard_overhead.py --calls 20000 --proxy-calls 3000 --json out.json

Runtime task sessions (in-process, same run):

* ``runtime step``: ``task.check`` in a task session with an instruction, recorded tool
  outputs (provenance of every argument), a history of earlier steps and a live credential
  to reuse, no log; compared with a bare ``evaluate`` of the request it builds;
* ``mint a credential``: sign an EdDSA JWT with the step's claims and keep it in the store;
* ``reuse a credential``: find the live credential for the step and check it is not revoked.

Targets: the guard adds at most 2x the bare ``evaluate`` cost per call; a runtime step at
most 3x; minting at most 150 µs; reusing at most 5 µs.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time

import nhipl
from nhipl.runtime import DecisionLog, Guard, Runtime

HERE = os.path.dirname(os.path.abspath(__file__))
POLICY = os.path.join(HERE, "..", "examples", "support-triage", "policies.nhipl")
TRIAGE = "spiffe://acme.org/agents/triage"


def percentiles(samples_ns: list[int]) -> dict:
    ordered = sorted(samples_ns)
    pick = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))] / 1000  # noqa: E731
    return {"p50_us": round(pick(0.50), 2), "p99_us": round(pick(0.99), 2), "mean_us": round(statistics.fmean(ordered) / 1000, 2)}


def time_calls(fn, calls: int) -> dict:
    for _ in range(min(1000, calls)):  # warm up caches and the compiled evaluator
        fn()
    samples = []
    clock = time.perf_counter_ns
    gc.disable()
    try:
        for _ in range(calls):
            start = clock()
            fn()
            samples.append(clock() - start)
    finally:
        gc.enable()
    return percentiles(samples)


def guard_figures(calls: int, log_dir: str) -> dict:
    policies = nhipl.load(POLICY)
    plain = Guard(policies, TRIAGE)
    logged = Guard(policies, TRIAGE, decision_log=DecisionLog(os.path.join(log_dir, "decisions.log")))

    def read_ticket(ticket_id, include_comments=False):
        return ticket_id

    async def read_ticket_async(ticket_id, include_comments=False):
        return ticket_id

    tool = plain.wrap(read_ticket, name="zendesk.read_ticket")
    tool_logged = logged.wrap(read_ticket, name="zendesk.read_ticket")
    tool_async = logged.wrap(read_ticket_async, name="zendesk.read_ticket")
    out = {}
    with plain.task("triage-ticket", id="bench"):
        request = plain.request("zendesk.read_ticket", {"ticket_id": 4711, "include_comments": True})
        assert policies.evaluate(request).effect == "allow"
        out["evaluate"] = time_calls(lambda: policies.evaluate(request), calls)
        out["guard.check"] = time_calls(lambda: plain.check(request), calls)
        out["guarded call"] = time_calls(lambda: tool(4711, include_comments=True), calls)
    with logged.task("triage-ticket", id="bench"):
        out["guarded call + log"] = time_calls(lambda: tool_logged(4711, include_comments=True), calls)

        async def many():
            for _ in range(min(1000, calls)):
                await tool_async(4711, include_comments=True)
            samples = []
            clock = time.perf_counter_ns
            gc.disable()
            try:
                for _ in range(calls):
                    start = clock()
                    await tool_async(4711, include_comments=True)
                    samples.append(clock() - start)
            finally:
                gc.enable()
            return percentiles(samples)

        out["guarded async call + log"] = asyncio.run(many())
    base = out["evaluate"]["p50_us"]
    for name, figures in out.items():
        figures["x_evaluate_p50"] = round(figures["p50_us"] / base, 2)
    return out


def runtime_figures(calls: int) -> dict:
    policies = nhipl.load(POLICY)
    rt = Runtime(policies)
    task = rt.start_task(TRIAGE, "triage-ticket", prompt="triage ticket 4711 for acme and reply to the customer")
    for n in range(20):
        task.record_output("zendesk.search", {"ticket": 4700 + n, "subject": f"printer on floor {n} is on fire"})
    for n in range(50):  # a history of earlier steps
        task.check(TRIAGE, "zendesk.read_ticket", {"ticket_id": 4000 + n})
    args = {"ticket_id": 4711, "include_comments": True}
    step = task.check(TRIAGE, "zendesk.read_ticket", args)
    assert step.effect == "allow" and step.credential is not None, step
    request = step.request
    out = {"evaluate": time_calls(lambda: policies.evaluate(request), calls)}
    history = task.history

    def checked_step():
        task.check(TRIAGE, "zendesk.read_ticket", args)
        del history[-1]  # keep the history's length fixed across the run

    out["runtime step"] = time_calls(checked_step, calls)
    key = (TRIAGE, task.id, "call", "zendesk.read_ticket", None)
    now = time.time()
    out["reuse a credential"] = time_calls(lambda: rt._live(key, now), calls)
    decision = policies.evaluate(request)
    out["mint a credential"] = time_calls(lambda: rt._credential(task, TRIAGE, [], request, decision, now), min(calls, 5000))
    base = out["evaluate"]["p50_us"]
    for figures in out.values():
        figures["x_evaluate_p50"] = round(figures["p50_us"] / base, 2)
    return out


ECHO_SERVER = textwrap.dedent(
    """
    import json, sys
    out = sys.stdout
    for line in sys.stdin:
        m = json.loads(line)
        if "id" not in m:
            continue
        if m.get("method") == "initialize":
            result = {"protocolVersion": m["params"]["protocolVersion"], "capabilities": {"tools": {}},
                      "serverInfo": {"name": "echo", "version": "0"}}
        elif m.get("method") == "tools/list":
            result = {"tools": [{"name": "read_ticket", "inputSchema": {"type": "object"}, "annotations": {"readOnlyHint": True}}]}
        else:
            result = {"content": [{"type": "text", "text": "ok"}], "isError": False}
        out.write(json.dumps({"jsonrpc": "2.0", "id": m["id"], "result": result}) + "\\n")
        out.flush()
    """
)

PROXY_POLICY = """
permit any agent to call "zendesk.read_ticket" when task.intent == "triage-ticket" grant ttl 5m;
forbid any agent to call "zendesk.*" when context.tool_annotations has destructiveHint and context.tool_annotations.destructiveHint == true;
"""


def round_trips(command: list[str], calls: int) -> dict:
    process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=0)
    stdin, stdout = process.stdin, process.stdout
    reader = stdout  # unbuffered pipe: read lines through a buffered wrapper
    reader = os.fdopen(stdout.fileno(), "rb", buffering=1 << 16, closefd=False)

    def call(message: dict) -> dict:
        stdin.write(json.dumps(message).encode() + b"\n")
        return json.loads(reader.readline())

    call({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "bench", "version": "0"}}})
    stdin.write(b'{"jsonrpc":"2.0","method":"notifications/initialized"}\n')
    call({"jsonrpc": "2.0", "id": 1, "method": "tools/list"})
    samples = []
    clock = time.perf_counter_ns
    for i in range(calls + 200):
        message = {"jsonrpc": "2.0", "id": i + 2, "method": "tools/call", "params": {"name": "read_ticket", "arguments": {"ticket_id": i}}}
        start = clock()
        reply = call(message)
        elapsed = clock() - start
        assert reply.get("result", {}).get("isError") is False, reply
        if i >= 200:  # warm-up
            samples.append(elapsed)
    stdin.close()
    process.wait(timeout=30)
    reader.close()
    stdout.close()
    return percentiles(samples)


def proxy_figures(calls: int, work_dir: str) -> dict:
    server = os.path.join(work_dir, "echo_server.py")
    with open(server, "w") as fh:
        fh.write(ECHO_SERVER)
    policy = os.path.join(work_dir, "proxy.nhipl")
    with open(policy, "w") as fh:
        fh.write(PROXY_POLICY)
    direct = [sys.executable, server]
    proxied = [
        sys.executable, "-c", "from nhipl.cli import main; main()", "mcp-proxy", "-p", policy,
        "--identity", TRIAGE, "--intent", "triage-ticket", "--prefix", "zendesk",
    ]
    out = {"direct": round_trips(direct, calls)}
    out["through proxy"] = round_trips(proxied + ["--", *direct], calls)
    out["through proxy + log"] = round_trips(proxied + ["--log", os.path.join(work_dir, "proxy.log"), "--", *direct], calls)
    for name in ("through proxy", "through proxy + log"):
        out[name]["added_p50_us"] = round(out[name]["p50_us"] - out["direct"]["p50_us"], 1)
        out[name]["added_p99_us"] = round(out[name]["p99_us"] - out["direct"]["p99_us"], 1)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20000, help="guarded calls per variant")
    parser.add_argument("--proxy-calls", type=int, default=2000, help="tools/call round trips per variant")
    parser.add_argument("--json", help="also write the figures to this file")
    parser.add_argument("--no-proxy", action="store_true", help="skip the MCP proxy round trips")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as work_dir:
        figures = {
            "machine": {"python": platform.python_version(), "platform": platform.platform(), "cpus": os.cpu_count()},
            "guard": guard_figures(args.calls, work_dir),
            "runtime": runtime_figures(args.calls),
        }
        if not args.no_proxy:
            figures["proxy"] = proxy_figures(args.proxy_calls, work_dir)
    print(f"guard, per call ({args.calls} calls; x = p50 over bare evaluate p50)")
    for name, f in figures["guard"].items():
        print(f"  {name:26s} p50 {f['p50_us']:8.2f} µs   p99 {f['p99_us']:8.2f} µs   x{f['x_evaluate_p50']}")
    print(f"runtime task sessions ({args.calls} steps; x = p50 over bare evaluate p50)")
    for name, f in figures["runtime"].items():
        print(f"  {name:26s} p50 {f['p50_us']:8.2f} µs   p99 {f['p99_us']:8.2f} µs   x{f['x_evaluate_p50']}")
    print(f"mcp proxy, per tools/call round trip ({args.proxy_calls} calls)")
    for name, f in figures.get("proxy", {}).items():
        added = f" (added p50 {f['added_p50_us']} µs, p99 {f['added_p99_us']} µs)" if "added_p50_us" in f else ""
        print(f"  {name:22s} p50 {f['p50_us']:8.1f} µs   p99 {f['p99_us']:8.1f} µs{added}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(figures, fh, indent=2)


if __name__ == "__main__":
    main()
