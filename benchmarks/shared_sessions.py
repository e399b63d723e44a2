"""A task step on the shared (Redis) store against the same step on the memory store.

Each variant times ``task.check`` in the session ``guard_overhead.py`` builds (an
instruction, 20 recorded outputs, 50 earlier steps, a live credential to reuse; no log), each
call on its own with ``perf_counter_ns``:

* ``memory``: the in-process session (no lock beyond the task's own, nothing serialised);
* ``redis, one runtime``: the same task kept in Redis: per step the task's lock is taken and
  the changes since the last step are read in one script call, the step's changes are
  appended and the lock released in another;
* ``redis, two runtimes``: steps alternate between two runtimes on the same task, so every
  step first applies the change the other runtime made (what several workers see).

With ``--http``, also a step through ``nhipl serve`` (``POST /v1/tasks/{id}/steps`` on one
kept-alive connection, one request at a time, timed by the client): on the memory store, on
Redis, and on Redis with two workers.

It starts its own ``redis-server`` (from ``PATH``) on a free loopback port, with no
persistence, and stops it at the end.

    .venv/bin/python benchmarks/shared_sessions.py
    .venv/bin/python benchmarks/shared_sessions.py --steps 5000 --http --json out.json
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time

import nhipl
from nhipl.runtime import Runtime

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [HERE, os.path.dirname(HERE)]
from guard_overhead import POLICY, TRIAGE, time_calls  # noqa: E402

from tests.redis_server import RedisServer  # noqa: E402 - the test suite's throwaway redis-server

ARGS = {"ticket_id": 4711, "include_comments": True}


def session(rt: Runtime, task_id: str):
    task = rt.start_task(TRIAGE, "triage-ticket", prompt="triage ticket 4711 for acme and reply to the customer", task_id=task_id)
    for n in range(20):
        task.record_output("zendesk.search", {"ticket": 4700 + n, "subject": f"printer on floor {n} is on fire"})
    for n in range(50):
        task.check(TRIAGE, "zendesk.read_ticket", {"ticket_id": 4000 + n})
    step = task.check(TRIAGE, "zendesk.read_ticket", ARGS)
    assert step.effect == "allow" and step.credential is not None, step
    return task


def figures(steps: int, url: str) -> dict:
    policies = nhipl.load(POLICY)
    out = {}
    memory = session(Runtime(policies), "bench-memory")
    out["memory"] = time_calls(lambda: memory.check(TRIAGE, "zendesk.read_ticket", ARGS), steps)

    one = Runtime(policies, store=url)
    shared = session(one, "bench-shared")
    out["redis, one runtime"] = time_calls(lambda: shared.check(TRIAGE, "zendesk.read_ticket", ARGS), steps)

    two = Runtime(policies, store=url)
    tasks = [shared, two.task("bench-shared")]
    turn = [0]

    def alternate():
        turn[0] ^= 1
        tasks[turn[0]].check(TRIAGE, "zendesk.read_ticket", ARGS)

    out["redis, two runtimes"] = time_calls(alternate, steps)
    base = out["memory"]["p50_us"]
    for f in out.values():
        f["x_memory_p50"] = round(f["p50_us"] / base, 2)
    one.close()
    two.close()
    return out


def http_figures(steps: int, url: str, folder: str) -> dict:
    policy = os.path.join(folder, "p.nhipl")
    with open(policy, "w") as fh:
        fh.write('@id("read") permit any agent to call "zendesk.read_ticket" grant ttl 5m;\n')
    out = {}
    for name, extra in (("http, memory", []), ("http, redis", ["--store", url]), ("http, redis, 2 workers", ["--store", url, "--workers", "2"])):
        proc = subprocess.Popen([sys.executable, "-m", "nhipl", "serve", "-p", policy, "--port", "0", "--watch", "0", *extra],
                                stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
        try:
            port = int(re.search(r":(\d+) ", proc.stderr.readline()).group(1))
            conn = None
            for _ in range(600):
                try:
                    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                    task = post(conn, "/v1/tasks", {"agent": TRIAGE, "intent": "triage-ticket"})["task"]
                    break
                except OSError:
                    time.sleep(0.05)
            step = lambda: post(conn, f"/v1/tasks/{task}/steps", {"agent": TRIAGE, "tool": "zendesk.read_ticket", "args": ARGS})  # noqa: E731
            out[name] = time_calls(step, steps)
            conn.close()
        finally:
            proc.terminate()
            proc.wait(timeout=60)
            proc.stderr.close()
    base = out["http, memory"]["p50_us"]
    for f in out.values():
        f["x_memory_p50"] = round(f["p50_us"] / base, 2)
    return out


def post(conn, path: str, body: dict) -> dict:
    conn.request("POST", path, body=json.dumps(body), headers={"Content-Type": "application/json"})
    response = conn.getresponse()
    reply = json.loads(response.read())
    if response.status not in (200, 201):
        raise SystemExit(f"{path}: {response.status} {reply}")
    return reply


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=5000, help="steps timed per variant")
    parser.add_argument("--http", action="store_true", help="also time steps through nhipl serve")
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()
    if shutil.which("redis-server") is None:
        sys.exit("redis-server is not installed (apt-get install -y redis-server)")
    with tempfile.TemporaryDirectory() as folder:
        redis = RedisServer(folder)
        url = redis.url
        try:
            out = {"machine": {"python": platform.python_version(), "platform": platform.platform(), "cpus": os.cpu_count()},
                   "steps": figures(args.steps, url)}
            if args.http:
                out["steps"].update(http_figures(args.steps, url, folder))
        finally:
            redis.stop()
    print(f"a task step ({args.steps} steps per variant; x = p50 over the memory store's p50)")
    for name, f in out["steps"].items():
        print(f"  {name:22s} p50 {f['p50_us']:8.2f} µs   p99 {f['p99_us']:8.2f} µs   x{f['x_memory_p50']}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(out, fh, indent=2)


if __name__ == "__main__":
    main()
