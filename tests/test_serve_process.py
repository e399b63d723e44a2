"""`nhipl serve` as a process: starting, refusing to start, auth, limits, SIGTERM draining,
several workers, the decision log. :class:`Server` (a real server process on a free loopback
port) is shared by the other serve tests."""

from __future__ import annotations

import http.client
import json
import os
import pathlib
import re
import signal
import socket
import subprocess
import sys
import time

import pytest

pytest.importorskip("uvicorn", reason="the `serve` extra is not installed (pip install -e '.[serve]')")

ROOT = pathlib.Path(__file__).resolve().parent.parent
START_TIMEOUT = 60.0

POLICY = """
@id("read-docs")
permit any agent to call "docs.*" grant ttl 5m;

@id("delete-needs-approval")
require approval for any agent to call "docs.delete" because "deleting needs a human";

@id("no-secrets")
forbid any agent to call "docs.secret";
"""


class Server:
    """``nhipl serve`` in a child process on a free loopback port (``--port 0``)."""

    def __init__(self, paths, *args, env=None):
        cmd = [sys.executable, "-m", "nhipl", "serve", *[a for p in paths for a in ("-p", str(p))], "--port", "0", *args]
        self.proc = subprocess.Popen(
            cmd,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
            env={**os.environ, **(env or {})},
        )
        line = self.proc.stderr.readline()
        match = re.search(r"listening on http://127\.0\.0\.1:(\d+)", line)
        if match is None:
            out, err = self.proc.communicate(timeout=30)
            raise AssertionError(f"nhipl serve did not start (exit {self.proc.returncode}): {line}{err}{out}")
        self.port = int(match.group(1))
        self.token = None
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            try:
                if self.request("GET", "/healthz")[0] == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise AssertionError(f"nhipl serve never answered /healthz: {self.stop()}")
            time.sleep(0.05)

    def connection(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)

    def request(self, method, path, body=None, headers=None, conn=None):
        """(status, headers as a lowercase dict, parsed JSON body or text)."""
        own = conn is None
        conn = conn or self.connection()
        hdrs = dict(headers or {})
        if self.token is not None and "Authorization" not in hdrs:
            hdrs["Authorization"] = f"Bearer {self.token}"
        data = body if isinstance(body, (bytes, type(None))) else json.dumps(body).encode()
        try:
            conn.request(method, path, body=data, headers=hdrs)
            resp = conn.getresponse()
            raw = resp.read()
            got = {k.lower(): v for k, v in resp.getheaders()}
        finally:
            if own:
                conn.close()
        if got.get("content-type", "").startswith("application/json"):
            return resp.status, got, json.loads(raw)
        return resp.status, got, raw.decode()

    def post(self, path, body, **kw):
        return self.request("POST", path, body, **kw)

    def stop(self, sig=signal.SIGTERM, timeout=60) -> str:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            _, err = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            _, err = self.proc.communicate()
        return err

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def evaluation(subject="spiffe://acme.org/agents/a", action="call", rtype="tool", rid="docs.read", properties=None, context=None):
    body = {"subject": {"type": "agent", "id": subject}, "action": {"name": action}, "resource": {"type": rtype, "id": rid}}
    if properties is not None:
        body["resource"]["properties"] = properties
    if context is not None:
        body["context"] = context
    return body


@pytest.fixture
def policy_file(tmp_path):
    path = tmp_path / "policies.nhipl"
    path.write_text(POLICY)
    return path


def run_cli(*args, timeout=60):
    return subprocess.run([sys.executable, "-m", "nhipl", *args], capture_output=True, text=True, cwd=ROOT, timeout=timeout)


def test_bad_policies_stop_the_start_with_a_located_error(tmp_path):
    bad = tmp_path / "bad.nhipl"
    bad.write_text('permit any agent to call "x"\n')
    result = run_cli("serve", "-p", str(bad), "--port", "0")
    assert result.returncode == 2
    assert re.search(r"bad\.nhipl:\d+:\d+: ", result.stderr), result.stderr
    assert "Traceback" not in result.stderr


def test_a_non_loopback_bind_without_a_token_is_refused(policy_file):
    result = run_cli("serve", "-p", str(policy_file), "--host", "0.0.0.0", "--port", "0")
    assert result.returncode == 2
    assert "--token-file" in result.stderr and "--insecure" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("content", ["", "   \n", "two words\n"])
def test_a_bad_token_file_is_refused(policy_file, tmp_path, content):
    token = tmp_path / "token"
    token.write_text(content)
    result = run_cli("serve", "-p", str(policy_file), "--port", "0", "--token-file", str(token))
    assert result.returncode == 2
    assert f"{token}: " in result.stderr and ":1:1:" not in result.stderr


def test_a_port_in_use_is_bad_input(policy_file):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        result = run_cli("serve", "-p", str(policy_file), "--port", str(port))
    assert result.returncode == 2
    assert result.stderr.startswith("--port:1:1: cannot listen"), result.stderr


def test_the_token_guards_every_endpoint_but_health(policy_file, tmp_path):
    token = tmp_path / "token"
    token.write_text("s3cret-token\n")
    with Server([policy_file], "--token-file", str(token)) as server:
        for method, path, body in [
            ("POST", "/access/v1/evaluation", evaluation()),
            ("POST", "/access/v1/evaluations", {"evaluations": [evaluation()]}),
            ("POST", "/v1/decide", {"principal": "a", "tool": "docs.read"}),
            ("POST", "/v1/reload", None),
            ("GET", "/metrics", None),
            ("GET", "/.well-known/authzen-configuration", None),
        ]:
            status, headers, _ = server.request(method, path, body)
            assert status == 401, path
            assert headers["www-authenticate"] == "Bearer"
            status, _, _ = server.request(method, path, body, headers={"Authorization": "Bearer wrong"})
            assert status == 401, path
        assert server.request("GET", "/healthz")[0] == 200
        assert server.request("GET", "/readyz")[0] == 200
        server.token = "s3cret-token"
        status, _, out = server.post("/access/v1/evaluation", evaluation())
        assert (status, out["decision"]) == (200, True)
        assert server.request("GET", "/metrics")[0] == 200


def test_bodies_over_one_mebibyte_get_413(policy_file):
    with Server([policy_file]) as server:
        big = json.dumps(evaluation(context={"pad": "x" * (1 << 20)})).encode()
        status, _, out = server.post("/access/v1/evaluation", big)
        assert status == 413
        assert "larger than" in out["error"]
        just_under = json.dumps(evaluation(context={"pad": "x" * ((1 << 20) - 400)})).encode()
        assert len(just_under) <= 1 << 20
        assert server.post("/access/v1/evaluation", just_under)[0] == 200


def test_a_chunked_body_over_the_limit_gets_413(policy_file):
    with Server([policy_file]) as server:
        conn = server.connection()
        conn.putrequest("POST", "/v1/decide")
        conn.putheader("Transfer-Encoding", "chunked")
        conn.endheaders()
        chunk = b"x" * 65536
        try:
            for _ in range(20):
                conn.send(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            conn.send(b"0\r\n\r\n")
        except OSError:
            pass  # the server may answer and close before the whole body is sent
        resp = conn.getresponse()
        assert resp.status == 413
        conn.close()


def test_sigterm_drains_a_request_in_flight(policy_file):
    server = Server([policy_file])
    body = json.dumps(evaluation()).encode()
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        sock.sendall(
            b"POST /access/v1/evaluation HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (len(body), body[:10])
        )
        time.sleep(0.5)  # the request is in flight: headers read, body not complete
        server.proc.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        sock.sendall(body[10:])
        reply = b""
        while b"\r\n\r\n" not in reply or not reply.rstrip().endswith(b"}"):
            more = sock.recv(65536)
            if not more:
                break
            reply += more
    assert reply.startswith(b"HTTP/1.1 200"), reply
    assert b'"decision":true' in reply
    assert server.proc.wait(timeout=60) == 0
    server.stop()


def test_several_workers_serve_and_stop_cleanly(policy_file):
    server = Server([policy_file], "--workers", "2")
    try:
        pids = set()
        for _ in range(40):
            status, _, out = server.post("/access/v1/evaluation", evaluation())
            assert (status, out["decision"]) == (200, True)
            text = server.request("GET", "/metrics")[2]
            pids.update(re.findall(r'nhipl_policy_info\{version="[0-9a-f]+",pid="(\d+)"\}', text))
        assert pids, "no worker answered /metrics"
    finally:
        err = server.stop()
    assert server.proc.returncode == 0, err
    assert "Traceback" not in err


def test_the_decision_log_records_every_decision(policy_file, tmp_path):
    log = tmp_path / "decisions.jsonl"
    with Server([policy_file], "--log", str(log)) as server:
        server.post("/access/v1/evaluation", evaluation(rid="docs.read", properties={"args": {"q": "x"}}), headers={"X-Request-ID": "one"})
        server.post("/access/v1/evaluations", headers={"X-Request-ID": "two"}, body={"subject": {"type": "agent", "id": "b"}, "action": {"name": "call"}, "evaluations": [
            {"resource": {"type": "tool", "id": "docs.secret"}},
            {"resource": {"type": "tool", "id": "docs.delete"}},
        ]})
    records = [json.loads(line) for line in log.read_text().splitlines()]
    assert [(r["id"], r["agent"], r["tool"], r["effect"], r["source"]) for r in records] == [
        ("one", "spiffe://acme.org/agents/a", "docs.read", "allow", "serve"),
        ("two/0", "b", "docs.secret", "deny", "serve"),
        ("two/1", "b", "docs.delete", "approval_required", "serve"),
    ]
    assert records[0]["args"] == {"q": "x"}


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full, a file every write to fails")
def test_a_decision_that_cannot_be_logged_is_a_deny(policy_file):
    with Server([policy_file], "--log", "/dev/full") as server:
        status, _, out = server.post("/access/v1/evaluation", evaluation(rid="docs.read"))
        assert status == 200
        assert out["decision"] is False
        assert out["context"]["effect"] == "deny"
        assert "could not be logged" in out["context"]["reasons"][0]
        status, _, out = server.post("/v1/decide", {"principal": "a", "tool": "docs.read"})
        assert (status, out["effect"]) == (200, "deny")


def test_accepted_connections_have_nagle_off():
    """A response goes out in two writes (head, body): with Nagle's algorithm on, the second
    waits for the client's delayed ACK (~40 ms a request). asyncio turns it off only on
    sockets that say they are TCP."""
    import asyncio

    from nhipl.serve.server import bind

    async def check():
        sock = bind("127.0.0.1", 0)
        seen = asyncio.get_running_loop().create_future()

        class Probe(asyncio.Protocol):
            def connection_made(self, transport):
                seen.set_result(transport.get_extra_info("socket").getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
                transport.close()

        server = await asyncio.get_running_loop().create_server(Probe, sock=sock)
        _, writer = await asyncio.open_connection("127.0.0.1", sock.getsockname()[1])
        try:
            return await asyncio.wait_for(seen, 30)
        finally:
            writer.close()
            server.close()

    assert asyncio.run(check()) != 0


def test_without_the_serve_extra_the_command_says_what_to_install(policy_file):
    code = (
        "import sys; sys.modules['uvicorn'] = None\n"
        "from nhipl.cli import main\n"
        f"main(['serve', '-p', {str(policy_file)!r}, '--port', '0'])\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert result.returncode == 2
    assert "pip install 'nhipl[serve]'" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_huge_declared_body_is_refused_before_it_is_sent(policy_file):
    with Server([policy_file]) as server:
        with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
            sock.sendall(b"POST /v1/decide HTTP/1.1\r\nHost: x\r\nContent-Length: 100000000\r\n\r\n")
            reply = sock.recv(65536)
    assert reply.startswith(b"HTTP/1.1 413"), reply
