"""Hot reload of `nhipl serve`: under load no request fails and every response (a whole batch
and a task's step included) is decided by exactly one policy version; a reload that fails
keeps the old set."""

from __future__ import annotations

import os
import re
import signal
import threading
import time

from .test_serve_process import Server, evaluation


def version_text(name: str) -> str:
    return f'@id("{name}")\npermit any agent to call "probe.*" grant ttl 1m;\n\n@id("{name}-forbid")\nforbid any agent to call "probe.{name}";\n'


def write(path, text):
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


BATCH = {
    "subject": {"type": "agent", "id": "a"},
    "action": {"name": "call"},
    "evaluations": [{"resource": {"type": "tool", "id": f"probe.{i}"}} for i in range(100)],
}


def test_reload_under_load_fails_no_request_and_mixes_no_versions(tmp_path):
    folder = tmp_path / "policies"
    folder.mkdir()
    policy = folder / "p.nhipl"
    write(policy, version_text("v0"))
    server = Server([folder], "--watch", "0.1")
    results: list[tuple] = []
    failures: list[str] = []
    stop = threading.Event()

    task = server.post("/v1/tasks", {"agent": "a", "intent": "probe"})[2]["task"]

    def load():
        conn = server.connection()
        n = 0
        while not stop.is_set():
            n += 1
            try:
                if n % 3 == 1:
                    status, headers, out = server.post("/access/v1/evaluation", evaluation(rid="probe.x"), conn=conn)
                    rules = {tuple(out["context"]["rules"])} if status == 200 else None
                elif n % 3 == 2:  # a task's step: decided by the runtime, which reloads with the rest
                    status, headers, out = server.post(f"/v1/tasks/{task}/steps", {"agent": "a", "tool": "probe.x"}, conn=conn)
                    rules = {tuple(out["rules"])} if status == 200 else None
                else:
                    status, headers, out = server.post("/access/v1/evaluations", BATCH, conn=conn)
                    rules = {tuple(item["context"]["rules"]) for item in out["evaluations"]} if status == 200 else None
            except Exception as err:  # any failure counts; the assertion below shows it
                failures.append(repr(err))
                conn.close()
                conn = server.connection()
                continue
            if status != 200:
                failures.append(f"{status}: {out}")
            else:
                results.append((headers["x-nhipl-policy-version"], rules))
        conn.close()

    threads = [threading.Thread(target=load) for _ in range(4)]
    for t in threads:
        t.start()
    try:
        for k in range(1, 10):
            time.sleep(0.3)
            write(policy, version_text(f"v{k}"))
            if k % 3 == 0:
                assert server.post("/v1/reload", None)[0] == 200
            elif k % 3 == 1:
                server.proc.send_signal(signal.SIGHUP)
            # else: the file watch picks it up
        time.sleep(1.0)
    finally:
        stop.set()
        for t in threads:
            t.join()
    status, headers, out = server.post("/access/v1/evaluation", evaluation(rid="probe.x"))
    err = server.stop()
    assert not failures, failures[:5]
    assert out["context"]["rules"] == ["v9"], "the last version written is served"
    rule_of_version: dict[str, set] = {}
    for version, rules in results:
        assert len(rules) == 1, f"a batch decided by more than one policy version: {rules}"
        rule_of_version.setdefault(version, set()).update(rules)
    assert all(len(r) == 1 for r in rule_of_version.values()), rule_of_version
    assert len(rule_of_version) >= 3, f"too few versions seen under load: {rule_of_version}"
    assert len({next(iter(r)) for r in rule_of_version.values()}) == len(rule_of_version)
    assert "Traceback" not in err


def test_a_failed_reload_keeps_the_old_set(tmp_path):
    policy = tmp_path / "p.nhipl"
    write(policy, version_text("good"))
    with Server([policy], "--watch", "0.1") as server:
        _, headers, out = server.post("/access/v1/evaluation", evaluation(rid="probe.x"))
        good = headers["x-nhipl-policy-version"]
        assert out["context"]["rules"] == ["good"]

        write(policy, 'permit any agent to call "probe.*"\n')  # no `;`
        status, headers, out = server.post("/v1/reload", None)
        assert status == 422
        assert out["reloaded"] is False and out["version"] == good
        assert f"{policy.name}:1:" in out["error"]
        status, headers, out = server.post("/access/v1/evaluation", evaluation(rid="probe.x"))
        assert (status, headers["x-nhipl-policy-version"], out["context"]["rules"]) == (200, good, ["good"])
        ready = server.request("GET", "/readyz")[2]
        assert ready["policy_version"] == good and f"{policy.name}:1:" in ready["reload_error"]
        metrics = server.request("GET", "/metrics")[2]
        assert 'nhipl_reload_failing{pid="' in metrics and metrics.count("nhipl_reload_failing{") == 1
        assert [line for line in metrics.splitlines() if line.startswith("nhipl_reload_failing")][0].endswith(" 1")

        policy.unlink()  # a missing file fails too
        server.proc.send_signal(signal.SIGHUP)
        time.sleep(0.5)
        status, headers, out = server.post("/access/v1/evaluation", evaluation(rid="probe.x"))
        assert (status, headers["x-nhipl-policy-version"]) == (200, good)

        write(policy, version_text("fixed"))
        deadline = time.monotonic() + 30
        while server.request("GET", "/readyz")[2].get("reload_error") is not None:
            assert time.monotonic() < deadline, "the file watch never reloaded the fixed file"
            time.sleep(0.1)
        _, headers, out = server.post("/access/v1/evaluation", evaluation(rid="probe.x"))
        assert out["context"]["rules"] == ["fixed"] and headers["x-nhipl-policy-version"] != good
        err = server.stop()
    assert "reload failed" in err and "still serving version " + good in err


def test_a_reload_through_one_worker_reaches_every_worker(tmp_path):
    policy = tmp_path / "p.nhipl"
    write(policy, version_text("before"))
    server = Server([policy], "--workers", "2", "--watch", "0")
    try:
        write(policy, version_text("after"))
        status, _, out = server.post("/v1/reload", None)
        assert status == 200 and out["reloaded"] is True
        deadline = time.monotonic() + 30
        while True:  # the other worker hears of it through the parent's SIGHUP
            rules = {tuple(server.post("/access/v1/evaluation", evaluation(rid="probe.x"))[2]["context"]["rules"]) for _ in range(20)}
            if rules == {("after",)}:
                break
            assert time.monotonic() < deadline, rules
            time.sleep(0.2)
        pids = set()
        for _ in range(30):
            pids.update(re.findall(r'nhipl_policy_info\{version="[0-9a-f]+",pid="(\d+)"\}', server.request("GET", "/metrics")[2]))
        versions = {server.post("/access/v1/evaluation", evaluation(rid="probe.x"))[1]["x-nhipl-policy-version"] for _ in range(30)}
        assert len(versions) == 1
    finally:
        err = server.stop()
    assert server.proc.returncode == 0, err
