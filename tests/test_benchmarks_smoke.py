"""The hand-run benchmarks still run: tiny sizes, one pass, no timing asserted."""

from __future__ import annotations

import pathlib
import subprocess
import sys

import pytest

BENCH = pathlib.Path(__file__).resolve().parent.parent / "benchmarks"


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=300, cwd=BENCH)


def test_evaluate_script_reports_every_size_and_target():
    done = run("evaluate.py", "--sizes", "10,30", "--requests", "60", "--passes", "2")
    assert done.returncode == 0, done.stderr
    rows = [line for line in done.stdout.splitlines() if line.startswith("| 10 |") or line.startswith("| 30 |")]
    assert len(rows) == 2
    assert "median at 30 rules / at 10 rules" in done.stdout
    assert "first-pass median µs" in done.stdout
    assert sum(line.startswith(("- met:", "- MISSED:")) for line in done.stdout.splitlines()) == 4


def test_peers_script_with_nhipl_alone():
    done = run("peers.py", "--engines", "nhipl", "--sizes", "10", "--requests", "40", "--passes", "1", "--budget", "0.2")
    assert done.returncode == 0, done.stderr
    assert "| nhipl | nhipl " in done.stdout
    assert "all identical" in done.stdout
    assert "First pass, not in the medians above" in done.stdout


def test_misses_child_runs_the_workload_and_summaries_parse(tmp_path):
    done = run("misses.py", "--child", "10", "1", "30")
    assert done.returncode == 0, done.stderr
    sys.path.insert(0, str(BENCH))
    try:
        import misses
    finally:
        sys.path.remove(str(BENCH))
    out = tmp_path / "cg.out"
    out.write_text("desc: I1 cache: 65536 B\nevents: Ir Dr D1mr DLmr\nfl=x\n1 2 3 4 5\nsummary: 100 40 3 1\n")
    assert misses.summary(str(out)) == {"Ir": 100, "Dr": 40, "D1mr": 3, "DLmr": 1}
    (tmp_path / "bad.out").write_text("events: Ir\n")
    with pytest.raises(SystemExit, match="no summary line"):
        misses.summary(str(tmp_path / "bad.out"))


def test_lint_script_reports_each_size():
    done = run("lint.py", "--sizes", "20,40", "--passes", "1")
    assert done.returncode == 0, done.stderr
    rows = [line for line in done.stdout.splitlines() if line.startswith(("| 20 |", "| 40 |"))]
    assert len(rows) == 2 and all(row.count("|") == 9 for row in rows)


def test_proxy_overhead_script_compares_two_trees():
    root = str(BENCH.parent)
    done = run("proxy_overhead.py", "--before", root, "--rounds", "1", "--calls", "20")
    assert done.returncode == 0, done.stderr
    assert "before: through proxy + log" in done.stdout and "after: through proxy" in done.stdout and "added p50" in done.stdout


def test_shared_sessions_script_times_memory_and_redis_steps():
    import shutil

    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed (apt-get install -y redis-server); the shared-store benchmark starts one")
    pytest.importorskip("redis", reason="the `redis` client is not installed")
    pytest.importorskip("uvicorn", reason="the `serve` extra is not installed")
    done = run("shared_sessions.py", "--steps", "50", "--http")
    assert done.returncode == 0, done.stderr
    names = [line.split(" p50 ")[0].strip() for line in done.stdout.splitlines() if " p50 " in line and "µs" in line]
    assert names == ["memory", "redis, one runtime", "redis, two runtimes", "http, memory", "http, redis", "http, redis, 2 workers"]
