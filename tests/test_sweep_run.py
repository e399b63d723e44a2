"""Running sweeps: executors agree, a killed sweep resumes, the table stays whole."""

from __future__ import annotations

import io
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from nhipl.cli import main
from nhipl.simulator.sweep import (
    DaskExecutor, ExecutorError, LocalExecutor, RunFailed, columns, execute, is_measured, parse_config, plan, read_results, run_sweep,
)
from nhipl.simulator.sweep.progress import Progress
from nhipl.simulator.sweep.table import ResultsTable

TINY = """\
[sweep]
study = "revocation"
seeds = 2

[parameters]
speed = [0.5, 2]
ttl = [10, 30]
max_ops = [0, 5]
agents = 2

[[plot]]
x = "speed * ttl"
y = "ops_after_revoke_per_agent"
hue = "max_ops"
reference = "ops_after_revoke_model"
file = "ops.png"
"""

SWARM = """\
[sweep]
study = "swarm"
seeds = 2

[parameters]
agents = 4
tasks = 6
topology = ["hierarchy", "mesh"]
drift = [0.0, 0.3]
unapproved = 0.2
approval_wait = "const:60"
"""


def deterministic(path) -> list[dict]:
    header, rows = read_results(path)
    keep = [c for c in header if not is_measured(c)]
    return [{c: row[c] for c in keep} for row in rows]


def write_config(tmp_path, text, name="sweep.toml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def test_local_and_dask_give_identical_rows(tmp_path):
    config = parse_config(TINY, str(tmp_path / "tiny.toml"))
    local = run_sweep(config, tmp_path / "local", LocalExecutor(workers=2), stream=io.StringIO())
    dask = run_sweep(config, tmp_path / "dask", DaskExecutor(workers=2, processes=False, timeout=30),
                     stream=io.StringIO())
    assert local.ran == dask.ran == 16
    rows = deterministic(local.table)
    assert rows == deterministic(dask.table)
    # ... and the same as running each spec in this process, in plan order.
    inline = [execute(spec) for spec in plan(config)]
    assert rows == [{c: r[c] for c in rows[0]} for r in inline]
    assert [r["run_id"] for r in rows] == [spec.run_id for spec in plan(config)]
    # The study did something: calls after revocation, capped by max_ops.
    assert any(r["ops_after_revoke"] > 0 for r in rows)
    assert all(r["ops_after_revoke_per_agent"] <= 5 for r in rows if r["max_ops"] == 5)
    assert (tmp_path / "local" / "ops.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_dask_cli_on_a_process_cluster_matches_local(tmp_path):
    path = write_config(tmp_path, SWARM)
    runner = CliRunner()
    local = runner.invoke(main, ["sweep", str(path), "--out", str(tmp_path / "local"), "--workers", "2"])
    assert local.exit_code == 0, local.output
    dask = runner.invoke(main, ["sweep", str(path), "--out", str(tmp_path / "dask"), "--executor", "dask", "--workers", "2"])
    assert dask.exit_code == 0, dask.output
    assert "8 runs: 8 ran, 0 already done" in dask.output
    rows = deterministic(tmp_path / "local" / "results.csv")
    assert rows == deterministic(tmp_path / "dask" / "results.csv")
    assert {r["topology"] for r in rows} == {"hierarchy", "mesh"}
    # drift plants denied steps; with none planted the swarm's own policy allows its work
    assert sum(r["overreach.denied"] for r in rows if r["drift"] == 0.3) > sum(r["overreach.denied"] for r in rows if r["drift"] == 0.0)


def test_dask_scheduler_address_that_does_not_answer():
    config = parse_config(TINY)
    executor = DaskExecutor(scheduler="tcp://127.0.0.1:9", timeout=1)
    with pytest.raises(ExecutorError, match=r"cannot reach the dask scheduler at `tcp://127\.0\.0\.1:9`"):
        list(executor.run(execute, plan(config)[:1]))


SLOW = """\
[sweep]
study = "revocation"
seeds = 4

[parameters]
speed = [1, 2, 3, 4]
ttl = [20, 40, 60]
agents = 16
"""


def test_resume_after_a_killed_sweep(tmp_path):
    path = write_config(tmp_path, SLOW)
    out = tmp_path / "out"
    table = out / "results.csv"
    nhipl = Path(sys.executable).with_name("nhipl")
    command = [str(nhipl), "sweep", str(path), "--out", str(out), "--workers", "1", "--no-plots"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and process.poll() is None:
            if table.exists() and table.read_bytes().count(b"\n") >= 4:  # header and 3 rows
                break
            time.sleep(0.01)
        assert process.poll() is None, "the sweep finished before it could be killed"
        os.killpg(process.pid, signal.SIGKILL)  # the sweep, its forkserver and its workers
    finally:
        process.wait(timeout=30)
        process.stdout.close()
        process.stderr.close()
    done_before = table.read_bytes().count(b"\n") - 1
    assert 3 <= done_before < 48
    # A write cut short by the kill: a row without its newline.
    with open(table, "ab") as fh:
        fh.write(b"0123456789abcdef,1.0,20,6,0,17,2.8")

    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    match = re.search(r"48 runs: (\d+) ran, (\d+) already done", result.stdout)
    assert match, result.stdout
    assert int(match.group(2)) == done_before and int(match.group(1)) == 48 - done_before

    config = parse_config(SLOW, str(path))
    rows = deterministic(table)
    assert [r["run_id"] for r in rows] == [spec.run_id for spec in plan(config)]  # each once, in plan order
    assert b"0123456789abcdef" not in table.read_bytes()
    # The resumed table equals an uninterrupted sweep's.
    fresh = run_sweep(config, tmp_path / "fresh", LocalExecutor(workers=2), stream=io.StringIO())
    assert deterministic(fresh.table) == rows
    # Running again has nothing left to do.
    again = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert "48 runs: 0 ran, 48 already done" in again.stdout


def test_table_recovery_drops_only_the_partial_row(tmp_path):
    header = ("run_id", "x", "y")
    (tmp_path / "results.csv").write_bytes(b"run_id,x,y\na,1,2\nb,3,4\nc,5")
    table = ResultsTable(tmp_path, header)
    assert table.open() == {"a", "b"}
    table.append("c", {"x": 5, "y": 6.5, "z": "ignored"})
    table.finish(["c", "a", "b"])
    assert (tmp_path / "results.csv").read_text() == "run_id,x,y\nc,5,6.5\na,1,2\nb,3,4\n"


def test_table_with_a_cut_header_starts_over(tmp_path):
    (tmp_path / "results.csv").write_bytes(b"run_id,x")
    table = ResultsTable(tmp_path, ("run_id", "x", "y"))
    assert table.open() == set()
    table.close()
    assert (tmp_path / "results.csv").read_bytes() == b"run_id,x,y\n"


def test_a_table_from_another_config_is_refused(tmp_path):
    path = write_config(tmp_path, TINY)
    out = tmp_path / "out"
    runner = CliRunner()
    assert runner.invoke(main, ["sweep", str(path), "--out", str(out), "--no-plots"]).exit_code == 0
    before = (out / "results.csv").read_bytes()
    other = write_config(tmp_path, TINY.replace("ttl = [10, 30]", "ttl = [10]"), "other.toml")
    result = runner.invoke(main, ["sweep", str(other), "--out", str(out), "--no-plots"])
    assert result.exit_code == 2
    assert "holds 8 runs that are not in this sweep" in result.output
    third = write_config(tmp_path, TINY.replace("study = \"revocation\"", "study = \"swarm\"").replace(
        "speed = [0.5, 2]\nttl = [10, 30]\nmax_ops = [0, 5]\n", "").replace(
        '[[plot]]\nx = "speed * ttl"\ny = "ops_after_revoke_per_agent"\nhue = "max_ops"\nreference = "ops_after_revoke_model"\nfile = "ops.png"\n', ""), "third.toml")
    result = runner.invoke(main, ["sweep", str(third), "--out", str(out), "--no-plots"])
    assert result.exit_code == 2
    assert "this results table has other columns than the sweep" in result.output
    assert (out / "results.csv").read_bytes() == before


def boom(spec):
    raise ZeroDivisionError("planted")


def test_a_failing_run_is_named():
    config = parse_config(TINY)
    with pytest.raises(RunFailed, match=r"run `[0-9a-f]{16}` \(speed=0\.5, ttl=10, max_ops=0, agents=2, seed=0\) failed: ZeroDivisionError: planted"):
        list(DaskExecutor(workers=1, processes=False, timeout=30).run(boom, plan(config)[:1]))


def test_columns_are_stable_and_documented_as_measured_or_not():
    config = parse_config(TINY)
    header = columns(config)
    assert header == columns(parse_config(TINY))
    measured = [c for c in header if is_measured(c)]
    assert measured == ["latency.policy_us.p50", "latency.policy_us.p99", "latency.policy_us.mean", "latency.policy_us.first_step"]
    assert "latency.task_delay_s.p99" in header  # modelled and seeded: deterministic


class FakeTerminal(io.StringIO):
    def isatty(self):
        return True


def test_progress_bar_only_on_a_terminal():
    pipe = io.StringIO()
    bar = Progress(10, 2, pipe)
    bar.advance()
    bar.close()
    assert pipe.getvalue() == ""
    tty = FakeTerminal()
    bar = Progress(10, 2, tty)
    for _ in range(8):
        bar.advance()
    bar.close()
    assert "\r[" in tty.getvalue() and "10/10 runs" in tty.getvalue() and tty.getvalue().endswith("\n")


def test_run_ids_that_look_like_numbers_stay_text(tmp_path):
    table = ResultsTable(tmp_path, ("run_id", "x"))
    table.open()
    for run in ("9100371880816721", "12e45678abcdef01", "00000000000000ff"):
        table.append(run, {"x": 1})
    table.close()
    _, rows = read_results(tmp_path / "results.csv")
    assert [r["run_id"] for r in rows] == ["9100371880816721", "12e45678abcdef01", "00000000000000ff"]
