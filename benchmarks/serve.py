"""`nhipl serve` against the Cerbos PDP over HTTP, both speaking the AuthZEN Authorization API.

The policy is the AuthZEN Todo interop scenario: `examples/authzen-todo` for nhipl, and the
same rules in Cerbos's own format (written below: resource policies for `todo` and `user`
whose conditions carry the users' roles and e-mail addresses, as the nhipl policy's agent
declarations do). Both servers get the same AuthZEN request bodies: every user of the
scenario asking every action of it (65 evaluations), and batches of 100 of them.

The load generator is `wrk` (compiled; `apt-get install -y wrk`) with a Lua script that
cycles through the bodies. For each server, each body kind (single evaluation, batch of
100) and each concurrency (1, 8, 64 connections; one wrk thread), one short run gives
throughput and the p50/p99 latency. Before measuring, every body is sent to both servers
and the decisions are compared item by item (and with the AuthZEN interop decisions file's
expectations when that file is beside the checkout): a mismatch stops the benchmark.

    npm install cerbos            # gives node_modules/.bin/cerbos
    .venv/bin/python benchmarks/serve.py
    .venv/bin/python benchmarks/serve.py --duration 5 --workers 1,2 --json serve.json
    .venv/bin/python benchmarks/serve.py --stacks   # the HTTP stack choice (needs the bench extra)

Cerbos runs with CERBOS_NO_TELEMETRY=1, audit off, on loopback only. Not run in CI (the
smoke test runs `--smoke`: nhipl alone, one short point per kind).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import pathlib
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent
EXAMPLE = ROOT / "examples" / "authzen-todo"
INTEROP = ROOT.parent / "shared" / "data" / "authzen" / "todo-decisions-1_0-02.json"

USERS = {  # subject id: (e-mail, roles), as the scenario's information point gives them
    "CiRmZDA2MTRkMy1jMzlhLTQ3ODEtYjdiZC04Yjk2ZjVhNTEwMGQSBWxvY2Fs": ("rick@the-citadel.com", ["admin", "evil_genius"]),
    "CiRmZDE2MTRkMy1jMzlhLTQ3ODEtYjdiZC04Yjk2ZjVhNTEwMGQSBWxvY2Fs": ("morty@the-citadel.com", ["editor"]),
    "CiRmZDI2MTRkMy1jMzlhLTQ3ODEtYjdiZC04Yjk2ZjVhNTEwMGQSBWxvY2Fs": ("summer@the-smiths.com", ["editor"]),
    "CiRmZDM2MTRkMy1jMzlhLTQ3ODEtYjdiZC04Yjk2ZjVhNTEwMGQSBWxvY2Fs": ("beth@the-smiths.com", ["viewer"]),
    "CiRmZDQ2MTRkMy1jMzlhLTQ3ODEtYjdiZC04Yjk2ZjVhNTEwMGQSBWxvY2Fs": ("jerry@the-smiths.com", ["viewer"]),
}
BATCH_SIZE = 100


def cerbos_policies() -> dict[str, str]:
    """The Todo rules as Cerbos resource policies. Every AuthZEN subject has the role `user`
    (Cerbos takes the subject's type as its role when no `cerbos.roles` is given); who is an
    editor, admin or evil genius, and each user's e-mail, are policy variables."""
    editors = [pid for pid, (_, roles) in USERS.items() if set(roles) & {"editor", "admin", "evil_genius"}]
    admins = [pid for pid, (_, roles) in USERS.items() if "admin" in roles]
    geniuses = [pid for pid, (_, roles) in USERS.items() if "evil_genius" in roles]
    emails = ", ".join(f'"{pid}": "{email}"' for pid, (email, _) in USERS.items())
    own = "P.id in V.editors && has(R.attr.ownerID) && P.id in V.emails && R.attr.ownerID == V.emails[P.id]"
    todo = f"""\
        apiVersion: api.cerbos.dev/v1
        variables:
          editors: '{json.dumps(editors)}'
          admins: '{json.dumps(admins)}'
          geniuses: '{json.dumps(geniuses)}'
          emails: '{{{emails}}}'
        resourcePolicy:
          version: default
          resource: todo
          rules:
            - actions: ["can_read_todos"]
              effect: EFFECT_ALLOW
              roles: ["*"]
            - actions: ["can_create_todo"]
              effect: EFFECT_ALLOW
              roles: ["*"]
              condition:
                match:
                  expr: P.id in V.editors
            - actions: ["can_update_todo"]
              effect: EFFECT_ALLOW
              roles: ["*"]
              condition:
                match:
                  expr: P.id in V.geniuses || ({own})
            - actions: ["can_delete_todo"]
              effect: EFFECT_ALLOW
              roles: ["*"]
              condition:
                match:
                  expr: P.id in V.admins || ({own})
        """
    user = """\
        apiVersion: api.cerbos.dev/v1
        resourcePolicy:
          version: default
          resource: user
          rules:
            - actions: ["can_read_user"]
              effect: EFFECT_ALLOW
              roles: ["*"]
        """
    return {"todo.yaml": textwrap.dedent(todo), "user.yaml": textwrap.dedent(user)}


def bodies() -> list[dict]:
    """Every user asking every action of the scenario: 65 AuthZEN evaluation bodies."""
    out = []
    owners = [email for email, _ in USERS.values()]
    for pid in USERS:
        subject = {"type": "user", "id": pid}
        out.append({"subject": subject, "action": {"name": "can_read_user"}, "resource": {"type": "user", "id": owners[0]}})
        out.append({"subject": subject, "action": {"name": "can_read_todos"}, "resource": {"type": "todo", "id": "todo-1"}})
        out.append({"subject": subject, "action": {"name": "can_create_todo"}, "resource": {"type": "todo", "id": "todo-1"}})
        for action in ("can_update_todo", "can_delete_todo"):
            for i, owner in enumerate(owners):
                resource = {"type": "todo", "id": f"7240d0db-8ff0-41ec-98b2-34a096273b9{i}", "properties": {"ownerID": owner}}
                out.append({"subject": subject, "action": {"name": action}, "resource": resource})
    return out


def batches(singles: list[dict], count: int = 8) -> list[dict]:
    """``count`` batches of :data:`BATCH_SIZE` items, each a whole evaluation; the top-level
    context is there because Cerbos refuses a batch where neither it nor every item has one."""
    return [{"context": {"source": "benchmark"}, "evaluations": [singles[(b * 37 + i) % len(singles)] for i in range(BATCH_SIZE)]} for b in range(count)]


# -- servers -------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(port: int, path: str, proc: subprocess.Popen, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited early ({proc.returncode}): {proc.stderr.read() if proc.stderr else ''}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", path)
            if conn.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"server on port {port} never became healthy")


class Running:
    def __init__(self, name: str, proc: subprocess.Popen, port: int, tmp: str | None = None):
        self.name, self.proc, self.port, self.tmp = name, proc, port, tmp

    def stop(self) -> None:
        if self.proc.poll() is None:
            try:  # the whole group: npm's `cerbos` is a wrapper that does not pass SIGTERM on
                os.killpg(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.tmp:
            shutil.rmtree(self.tmp, ignore_errors=True)


def start_nhipl(workers: int, stack: str = "uvicorn") -> Running:
    port = free_port()
    if stack == "uvicorn":  # nhipl serve itself: uvicorn on the standard asyncio loop
        cmd = [sys.executable, "-m", "nhipl", "serve", "-p", str(EXAMPLE), "--port", str(port), "--watch", "0", "--workers", str(workers)]
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=ROOT, start_new_session=True)
        tmp = None
    else:  # the same ASGI app under another stack, for the comparison that chose the one above
        tmp = tempfile.mkdtemp(prefix="nhipl-serve-bench-")
        pathlib.Path(tmp, "bench_app.py").write_text(
            "from nhipl.serve.app import App\nfrom nhipl.serve.policyset import PolicySet\n"
            f"app = App(PolicySet([{str(EXAMPLE)!r}]), watch=0)\n"
        )
        bindir = os.path.dirname(sys.executable)
        if stack == "granian":
            exe = shutil.which("granian", path=bindir) or "granian"
            cmd = [exe, "--interface", "asgi", "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers), "--loop", "uvloop", "--log-level", "warning", "bench_app:app"]
        else:  # uvicorn+uvloop
            exe = shutil.which("uvicorn", path=bindir) or "uvicorn"
            cmd = [exe, "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers), "--loop", "uvloop", "--http", "httptools", "--log-level", "warning", "--no-access-log", "bench_app:app"]
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=tmp, env={**os.environ, "PYTHONPATH": tmp}, start_new_session=True)
    wait_healthy(port, "/healthz", proc)
    return Running(f"nhipl serve ({stack}, {workers} worker{'s' if workers > 1 else ''})", proc, port, tmp)


def find_cerbos(given: str | None) -> str | None:
    for candidate in (given, shutil.which("cerbos"), str(ROOT / "node_modules" / ".bin" / "cerbos")):
        if candidate and os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return None


def start_cerbos(binary: str) -> Running:
    tmp = tempfile.mkdtemp(prefix="nhipl-cerbos-bench-")
    policies = pathlib.Path(tmp, "policies")
    policies.mkdir()
    for name, text in cerbos_policies().items():
        (policies / name).write_text(text)
    port, grpc = free_port(), free_port()
    pathlib.Path(tmp, "conf.yaml").write_text(
        textwrap.dedent(
            f"""\
            server:
              httpListenAddr: "127.0.0.1:{port}"
              grpcListenAddr: "127.0.0.1:{grpc}"
              requestLimits:
                maxActionsPerResource: 500
                maxResourcesPerRequest: 500
            storage:
              driver: disk
              disk:
                directory: {policies}
                watchForChanges: false
            audit:
              enabled: false
            """
        )
    )
    proc = subprocess.Popen(
        [binary, "server", f"--config={tmp}/conf.yaml", "--log-level=error"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "CERBOS_NO_TELEMETRY": "1"},
        start_new_session=True,
    )
    wait_healthy(port, "/_cerbos/health", proc)
    return Running("Cerbos", proc, port, tmp)


# -- cross-check ---------------------------------------------------------------------------------


def post(port: int, path: str, body: dict) -> dict:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("POST", path, body=json.dumps(body), headers={"Content-Type": "application/json"})
    resp = conn.getresponse()
    data = resp.read()
    conn.close()
    if resp.status != 200:
        raise SystemExit(f"port {port} answered {resp.status} to {path}: {data[:300]!r}")
    return json.loads(data)


def decisions(server: Running, singles: list[dict], batch_bodies: list[dict]) -> list[bool]:
    out = [post(server.port, "/access/v1/evaluation", b)["decision"] for b in singles]
    for b in batch_bodies:
        out += [item["decision"] for item in post(server.port, "/access/v1/evaluations", b)["evaluations"]]
    return out


def interop_check(server: Running) -> str:
    if not INTEROP.is_file():
        return "interop file absent: skipped"
    cases = json.loads(INTEROP.read_text())
    wrong = 0
    for case in cases["evaluation"]:
        wrong += post(server.port, "/access/v1/evaluation", case["request"])["decision"] is not case["expected"]
    for case in cases["evaluations"]:
        body = {"context": {"source": "benchmark"}, **case["request"]}  # Cerbos needs a context
        got = [{"decision": i["decision"]} for i in post(server.port, "/access/v1/evaluations", body)["evaluations"]]
        wrong += got != case["expected"]
    if wrong:
        raise SystemExit(f"{server.name}: {wrong} AuthZEN Todo interop decisions differ from the expected ones")
    return "all 43 interop cases as expected"


# -- load ----------------------------------------------------------------------------------------

LUA = """
local bodies = {}
for line in io.lines(os.getenv("NHIPL_BENCH_BODIES")) do bodies[#bodies + 1] = line end
local i = 0
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
request = function()
  i = i % #bodies + 1
  return wrk.format(nil, nil, nil, bodies[i])
end
"""


def _ms(text: str) -> float:
    m = re.match(r"([\d.]+)(us|ms|s)", text)
    value, unit = float(m.group(1)), m.group(2)
    return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value


def wrk(port: int, path: str, body_file: str, lua: str, connections: int, duration: float) -> dict:
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(duration))}s", "--latency", "--timeout", "10s", "-s", lua, f"http://127.0.0.1:{port}{path}"]
    done = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "NHIPL_BENCH_BODIES": body_file}, timeout=duration + 60)
    out = done.stdout
    if done.returncode != 0:
        raise SystemExit(f"wrk failed: {done.stderr or out}")
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p50 = _ms(re.search(r"^\s+50%\s+(\S+)", out, re.M).group(1))
    p99 = _ms(re.search(r"^\s+99%\s+(\S+)", out, re.M).group(1))
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = re.search(r"Socket errors: (.*)", out)
    return {"rps": rps, "p50_ms": p50, "p99_ms": p99, "non_2xx": int(bad.group(1)) if bad else 0, "socket_errors": errors.group(1) if errors else ""}


def measure(server: Running, files: dict, lua: str, concurrency: list[int], duration: float) -> list[dict]:
    rows = []
    for kind, path, per in (("single", "/access/v1/evaluation", 1), ("batch", "/access/v1/evaluations", BATCH_SIZE)):
        wrk(server.port, path, files[kind], lua, 8, 1)  # warm-up
        for c in concurrency:
            r = wrk(server.port, path, files[kind], lua, c, duration)
            rows.append({"server": server.name, "kind": kind, "connections": c, **r, "decisions_per_s": r["rps"] * per})
            print(f"  {server.name:36} {kind:6} c={c:<3} {r['rps']:>9.0f} req/s  p50 {r['p50_ms']:.2f} ms  p99 {r['p99_ms']:.2f} ms", file=sys.stderr, flush=True)
    return rows


def table(rows: list[dict]) -> str:
    lines = [
        "| server | kind | connections | requests/s | decisions/s | p50 ms | p99 ms | errors |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        errors = r["non_2xx"] + (1 if r["socket_errors"] else 0)
        lines.append(
            f"| {r['server']} | {r['kind']} | {r['connections']} | {r['rps']:,.0f} | {r['decisions_per_s']:,.0f} | "
            f"{r['p50_ms']:.2f} | {r['p99_ms']:.2f} | {errors if errors else 0} |"
        )
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--duration", type=int, default=3, help="seconds per point (default 3)")
    ap.add_argument("--concurrency", default="1,8,64", help="connections per point (default 1,8,64)")
    ap.add_argument("--workers", default="1,2", help="nhipl serve worker counts to measure (default 1,2)")
    ap.add_argument("--cerbos", default=None, help="the cerbos binary (default: on PATH, or node_modules/.bin/cerbos)")
    ap.add_argument("--no-cerbos", action="store_true", help="measure nhipl serve alone")
    ap.add_argument("--stacks", action="store_true", help="compare HTTP stacks for the same app (uvicorn, uvicorn+uvloop, granian) instead of Cerbos")
    ap.add_argument("--smoke", action="store_true", help="tiny run: nhipl alone, one second, 1 and 8 connections")
    ap.add_argument("--json", default=None, help="also write the rows to this file")
    args = ap.parse_args(argv)
    if shutil.which("wrk") is None:
        print("serve.py: `wrk` is not installed (apt-get install -y wrk)", file=sys.stderr)
        return 2
    concurrency = [int(c) for c in args.concurrency.split(",")]
    workers = [int(w) for w in args.workers.split(",")]
    duration = args.duration
    if args.smoke:
        concurrency, workers, duration, args.no_cerbos = [1, 8], [1], 1, True
    cerbos = None
    if not args.no_cerbos and not args.stacks:
        cerbos = find_cerbos(args.cerbos)
        if cerbos is None:
            print("serve.py: no cerbos binary (npm install cerbos, or --cerbos PATH, or --no-cerbos)", file=sys.stderr)
            return 2

    singles = bodies()
    batch_bodies = batches(singles)
    tmp = tempfile.mkdtemp(prefix="nhipl-serve-bench-")
    files = {"single": os.path.join(tmp, "single.jsonl"), "batch": os.path.join(tmp, "batch.jsonl")}
    pathlib.Path(files["single"]).write_text("".join(json.dumps(b, separators=(",", ":")) + "\n" for b in singles))
    pathlib.Path(files["batch"]).write_text("".join(json.dumps(b, separators=(",", ":")) + "\n" for b in batch_bodies))
    lua = os.path.join(tmp, "bodies.lua")
    pathlib.Path(lua).write_text(LUA)

    rows: list[dict] = []
    notes: list[str] = []
    reference = None
    plan = [lambda w=w: start_nhipl(w) for w in workers]
    if args.stacks:
        plan += [lambda w=w, s=s: start_nhipl(w, s) for s in ("uvicorn+uvloop", "granian") for w in workers]
    if cerbos is not None:
        plan.append(lambda: start_cerbos(cerbos))
    try:
        for start in plan:  # every server decides every body the same, before any is timed
            server = start()
            try:
                got = decisions(server, singles, batch_bodies)
                reference = reference or got
                if got != reference:
                    diff = [i for i, (a, b) in enumerate(zip(got, reference)) if a != b]
                    raise SystemExit(f"{server.name} and the first server disagree on {len(diff)} of {len(got)} decisions (first at {diff[:5]})")
                notes.append(f"{server.name}: {interop_check(server)}")
            finally:
                server.stop()
        for start in plan:
            server = start()
            try:
                rows += measure(server, files, lua, concurrency, duration)
            finally:
                server.stop()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    allowed = sum(reference)
    print(f"Decisions cross-checked: {len(reference)} per server ({len(singles)} single, {len(batch_bodies)} batches of {BATCH_SIZE}), "
          f"{allowed} allow / {len(reference) - allowed} deny, {'identical on every server' if len(plan) > 1 else 'one server'}.")
    for note in notes:
        print(f"- {note}")
    print(f"\n{duration:g} s per point, wrk with one thread; {os.cpu_count()} CPUs, shared.\n")
    print(table(rows))
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
