"""Sweep configs: parsing, validation errors, expansion and run ids."""

from __future__ import annotations

import re
import textwrap

import pytest

from nhipl.simulator.sweep import ConfigError, columns, parse_config, plan
from nhipl.simulator.sweep.plan import points

from .cli import invoke

GOOD = """\
[sweep]
study = "revocation"
seeds = 2

[parameters]
speed = [0.5, 2]
ttl = [10, 40]
agents = 2
"""


def write(tmp_path, text, name="sweep.toml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def sweep_error(tmp_path, text) -> str:
    """Run `nhipl sweep` on a bad config: exit 2, one located message, no traceback."""
    path = write(tmp_path, text)
    result = invoke(["sweep", str(path), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "out").exists()
    return result.output


# Each bad config: (text, the expected location, a fragment of the message).
BAD = {
    "toml syntax": ("[sweep]\nseeds = \n", ":2:9:", "invalid TOML: invalid value"),
    "duplicate table": ("[sweep]\n[sweep]\n", ":2:", "invalid TOML: cannot declare"),
    "unknown table": ("[sweep]\n[parameter]\nttl = 1\n", ":2:1:", "unknown key `parameter`"),
    "unknown sweep key": ('[sweep]\nstudy = "revocation"\nseed = 3\n', ":3:1:", "unknown key `seed` in `[sweep]`"),
    "unknown study": ('[sweep]\nstudy = "revokation"\n', ":2:1:", "unknown study `revokation`"),
    "unknown parameter": ('[sweep]\nstudy = "revocation"\n[parameters]\nsped = [1, 2]\n', ":4:1:",
                          "study `revocation` has no parameter `sped`"),
    "wrong type": ('[sweep]\nstudy = "revocation"\n[parameters]\nttl = "ten"\n', ":4:1:",
                   "`ttl` must be an integer, not the string `ten`"),
    "out of range": ('[sweep]\nstudy = "revocation"\n[parameters]\nttl = [10, 0]\n', ":4:1:", "`ttl` must be at least 1, not 0"),
    "bad choice": ('[sweep]\nstudy = "revocation"\n[parameters]\narrivals = "bursty"\n', ":4:1:",
                   "`arrivals` must be one of `poisson`, `steady`, not `bursty`"),
    "empty axis": ('[sweep]\nstudy = "revocation"\n[parameters]\nttl = []\n', ":4:1:", "`ttl` is an empty list"),
    "repeated value": ('[sweep]\nstudy = "revocation"\n[parameters]\nttl = [5, 5]\n', ":4:1:", "`ttl` lists a value twice"),
    "seeds type": ('[sweep]\nstudy = "revocation"\nseeds = "five"\n', ":3:1:", "`seeds` must be a count or a list of integers"),
    "seeds zero": ('[sweep]\nstudy = "revocation"\nseeds = 0\n', ":3:1:", "`seeds` must be at least 1, not 0"),
    "range in grid": ('[sweep]\nstudy = "revocation"\n[parameters]\nttl = { min = 1, max = 9 }\n', ":4:1:",
                      "ranges are for random mode only"),
    "random without samples": ('[sweep]\nstudy = "revocation"\nmode = "random"\n', ":3:1:", "random mode needs `samples`"),
    "range upside down": ('[sweep]\nstudy = "revocation"\nmode = "random"\nsamples = 3\n[parameters]\nttl = { min = 9, max = 1 }\n',
                          ":6:1:", "has `min` 9 above `max` 1"),
    "unknown mode": ('[sweep]\nmode = "grd"\n', ":2:1:", "`mode` must be `grid` or `random`"),
    "policy variant missing": ('[sweep]\nstudy = "revocation"\n[parameters]\npolicy = ["builtin", "strict"]\n', ":4:1:",
                               "no policy variant `strict`"),
    "policy file missing": ('[sweep]\nstudy = "revocation"\n[policies]\nstrict = "nowhere.nhipl"\n', ":4:1:",
                            "policy file `nowhere.nhipl` not found"),
    "policy does not load": ('[sweep]\nstudy = "revocation"\n[policies]\nbad = { text = "permit nobody;" }\n', ":4:1:",
                             "policy `bad` does not load"),
    "plot unknown column": ('[sweep]\nstudy = "revocation"\n[[plot]]\nx = "ttl"\ny = "exposure_s"\n', ":5:1:",
                            "no column `exposure_s`"),
    "plot missing y": ('[sweep]\nstudy = "revocation"\n[[plot]]\nx = "ttl"\n', ":3:1:", "a plot needs `y`"),
    "plot bad band": ('[sweep]\nstudy = "revocation"\n[[plot]]\nx = "ttl"\ny = "ops_after_revoke"\nband = "ci99"\n', ":6:1:",
                      "`band` must be one of"),
    "plot where not a parameter": ('[sweep]\nstudy = "revocation"\n[[plot]]\nx = "ttl"\ny = "ops_after_revoke"\nwhere = { speeed = 1 }\n',
                                   ":6:1:", "`where` names `speeed`, which is not a parameter"),
    "second plot": ('[sweep]\nstudy = "revocation"\n[[plot]]\nx = "ttl"\ny = "ops_after_revoke"\n[[plot]]\nx = "tttl"\ny = "ops_after_revoke"\n',
                    ":7:1:", "no column `tttl`"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_config_is_a_located_error(tmp_path, case):
    text, location, fragment = BAD[case]
    output = sweep_error(tmp_path, text)
    first = output.splitlines()[0]
    assert first.startswith(str(tmp_path / "sweep.toml") + location), first
    assert fragment in output


def test_did_you_mean_for_close_names(tmp_path):
    output = sweep_error(tmp_path, '[sweep]\nstudy = "revocation"\n[parameters]\nsped = [1, 2]\n')
    assert "help: did you mean `speed`?" in output
    output = sweep_error(tmp_path, '[sweep]\nstudy = "revokation"\n')
    assert "did you mean `revocation`?" in output


def test_missing_and_unreadable_config(tmp_path):
    result = invoke(["sweep", str(tmp_path / "nope.toml")])
    assert result.exit_code == 2
    assert result.output.startswith(f"{tmp_path / 'nope.toml'}: no such file")
    (tmp_path / "bin.toml").write_bytes(b"[sweep]\nname = \"\xff\"\n")
    result = invoke(["sweep", str(tmp_path / "bin.toml")])
    assert result.exit_code == 2
    assert result.output.startswith(f"{tmp_path / 'bin.toml'}:2:9: not a UTF-8 text file")  # the first byte that is not text


def test_scheduler_needs_dask(tmp_path):
    path = write(tmp_path, GOOD)
    result = invoke(["sweep", str(path), "--executor", "local", "--scheduler", "tcp://127.0.0.1:1"])
    assert result.exit_code == 2
    assert "Error: `--scheduler` needs `--executor dask`" in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    ("flags", "where"),
    [(["--scheduler", "tcp://127.0.0.1:9"], "--scheduler"), (["--executor", "dask"], "--executor"), ([], "CONFIG")],
)
def test_executor_failure_names_the_flag(tmp_path, monkeypatch, flags, where):
    """An executor that cannot start is bad input located at the flag that chose it
    (the real unreachable-scheduler error is tested in test_sweep_run; here it is
    raised at once instead of after dask's connect timeout)."""
    import nhipl.simulator.sweep as sweep

    def unreachable(*args, **kwargs):
        raise sweep.ExecutorError("cannot reach the dask scheduler at `tcp://127.0.0.1:9`")

    monkeypatch.setattr(sweep, "run_sweep", unreachable)
    path = write(tmp_path, GOOD)
    result = invoke(["sweep", str(path), "--no-plots", "--out", str(tmp_path / "out"), *flags])
    assert result.exit_code == 2, result.output
    if where == "CONFIG":
        assert result.output.startswith(f"{path}: cannot reach the dask scheduler"), result.output
    else:  # a flag's problem is click's own parameter error, not a made-up file location
        assert f"Invalid value for '{where}': cannot reach the dask scheduler" in result.output, result.output


def test_grid_expansion_and_columns():
    config = parse_config(GOOD)
    assert [tuple(p.values()) for p in points(config)] == [(0.5, 10, 2), (0.5, 40, 2), (2.0, 10, 2), (2.0, 40, 2)]
    runs = plan(config)
    assert len(runs) == 8
    assert [r.seed for r in runs[:2]] == [0, 1]
    assert len({r.run_id for r in runs}) == 8
    header = columns(config)
    assert header[:6] == ("run_id", "speed", "ttl", "agents", "seed", "ops_after_revoke")
    assert "latency.policy_us.p50" in header and "revocation_gap.used_after_revoke" in header


def test_run_ids_do_not_depend_on_order_or_extension():
    config = parse_config(GOOD)
    reordered = parse_config(GOOD.replace("speed = [0.5, 2]", "speed = [2, 0.5, 8]").replace("seeds = 2", "seeds = [1, 0]"))
    before = {(r.params, r.seed): r.run_id for r in plan(config)}
    after = {(r.params, r.seed): r.run_id for r in plan(reordered)}
    assert all(after[key] == run for key, run in before.items())
    assert len(after) == 12


def test_policy_text_is_part_of_the_run_id(tmp_path):
    text = GOOD + '[policies]\nstrict = { text = "permit any agent to call \\"queue.*\\";" }\n'
    config = parse_config(text.replace("agents = 2", 'agents = 2\npolicy = ["builtin", "strict"]'))
    runs = plan(config)
    assert len(runs) == 16
    assert {r.policy is None for r in runs} == {True, False}
    other = parse_config(text.replace("queue.*", "queue.process").replace("agents = 2", 'agents = 2\npolicy = ["builtin", "strict"]'))
    assert {r.run_id for r in runs} & {r.run_id for r in plan(other)} == {r.run_id for r in runs if r.policy is None}


def test_random_mode_is_seeded():
    text = """\
    [sweep]
    study = "revocation"
    mode = "random"
    samples = 6
    sample_seed = 7
    seeds = 1

    [parameters]
    speed = { min = 0.1, max = 10, log = true }
    ttl = { min = 5, max = 500 }
    arrivals = ["poisson", "steady"]
    agents = 3
    """
    first = points(parse_config(textwrap.dedent(text)))
    again = points(parse_config(textwrap.dedent(text)))
    assert first == again and len(first) == 6
    for point in first:
        assert 0.1 <= point["speed"] <= 10 and isinstance(point["ttl"], int) and 5 <= point["ttl"] <= 500
        assert point["agents"] == 3
    other = points(parse_config(textwrap.dedent(text).replace("sample_seed = 7", "sample_seed = 8")))
    assert other != first


def test_config_error_renders_help_line():
    with pytest.raises(ConfigError) as info:
        parse_config('[sweep]\nstudy = "revocation"\n[parameters]\nttll = 3\n', "c.toml")
    assert re.match(r"c\.toml:4:1: study `revocation` has no parameter `ttll`\n  help: did you mean `ttl`\?$", info.value.render())


def test_policy_variant_extending_the_builtin_policy(tmp_path):
    (tmp_path / "extra.nhipl").write_text('forbid any agent to call "queue.process" when credential.age > 5s;\n')
    text = GOOD.replace("agents = 2", 'agents = 2\npolicy = ["builtin", "strict", "file"]') + textwrap.dedent("""\
        [policies]
        strict = { extends = "builtin", text = 'require approval for any agent to call "queue.*";' }
        file = { extends = "builtin", file = "extra.nhipl" }
        """)
    config = parse_config(text, str(tmp_path / "sweep.toml"))
    assert config.policies["strict"].extends and config.policies["file"].extends
    assert "credential.age" in config.policies["file"].text
    by_policy = {}
    for spec in plan(config):
        if spec.seed == 0 and dict(spec.params)["speed"] == 2.0 and dict(spec.params)["ttl"] == 40:
            from nhipl.simulator.sweep import execute

            by_policy[dict(spec.params)["policy"]] = execute(spec)
    # the built-in policy allows every call; the gate adds approval findings, the age limit denials
    assert by_policy["builtin"]["overreach"] == 0
    assert by_policy["strict"]["overreach.unapproved"] == by_policy["strict"]["steps"] > 0
    assert by_policy["file"]["overreach.denied"] > 0


@pytest.mark.parametrize("value, message, column", [
    ('{ txt = "x" }', "unknown key `txt` in `[policies.v]`", 7),  # the key inside the inline table
    ('{ extends = "builtin" }', "policy `v` needs one of `text` and `file`", 1),
    ('{ extends = "other", text = "" }', "`extends` can only name `builtin`, not `other`", 1),
    ("3", "policy `v` must be a file path or a table", 1),
])
def test_bad_policy_variants(tmp_path, value, message, column):
    output = sweep_error(tmp_path, f'[sweep]\nstudy = "revocation"\n[policies]\nv = {value}\n')
    assert output.startswith(f"{tmp_path / 'sweep.toml'}:4:{column}: {message}"), output
