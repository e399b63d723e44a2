"""benchmarks/serve.py still runs (`--smoke`: nhipl serve alone, one-second points); no timing
is asserted. The Cerbos side is run by hand."""

from __future__ import annotations

import pathlib
import shutil
import subprocess
import sys

import pytest

pytest.importorskip("uvicorn", reason="the `serve` extra is not installed (pip install -e '.[serve]')")

BENCH = pathlib.Path(__file__).resolve().parent.parent / "benchmarks" / "serve.py"


@pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is not installed (apt-get install -y wrk; .ci/run installs it)")
def test_the_serve_benchmark_runs_and_cross_checks():
    done = subprocess.run([sys.executable, str(BENCH), "--smoke"], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert "Decisions cross-checked: 865 per server" in done.stdout
    rows = [line for line in done.stdout.splitlines() if line.startswith("| nhipl serve")]
    assert len(rows) == 4
    assert all(line.endswith("| 0 |") for line in rows), rows


def test_the_cerbos_policy_is_the_todo_scenario():
    """The Cerbos side of the benchmark encodes the same users as the nhipl example."""
    sys.path.insert(0, str(BENCH.parent))
    try:
        import serve as bench
    finally:
        sys.path.remove(str(BENCH.parent))
    example = (BENCH.parent.parent / "examples" / "authzen-todo" / "policies.nhipl").read_text()
    for pid, (email, roles) in bench.USERS.items():
        assert f'agent "{pid}"' in example
        assert f'email: "{email}"' in example
        assert f"roles: {str(roles).replace(chr(39), chr(34))}" in example
    policies = bench.cerbos_policies()
    assert set(policies) == {"todo.yaml", "user.yaml"}
    assert all(pid in policies["todo.yaml"] for pid in bench.USERS)
