"""Plots and the docs: bands across seeds, grouping, and docs/research.md's configs."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest

from nhipl.simulator.sweep import ConfigError, parse_config
from nhipl.simulator.sweep.config import PlotSpec
from nhipl.simulator.sweep.plot import averaged_over, band, draw, series

from .cli import invoke

DOCS = Path(__file__).resolve().parent.parent / "docs" / "research.md"


def test_band_is_a_t_interval_of_the_mean():
    mean, half = band([1.0, 2.0, 3.0], "ci95")
    assert mean == 2.0
    assert half == pytest.approx(4.303 * 1.0 / math.sqrt(3))
    assert band([1.0, 2.0, 3.0], "sd") == (2.0, 1.0)
    assert band([5.0], "ci95") == (5.0, 0.0)
    assert band([1.0, 3.0], "none") == (2.0, 0.0)
    many = [float(i % 2) for i in range(100)]
    assert band(many, "ci95")[1] == pytest.approx(1.96 * 0.5025189 / 10, rel=1e-4)


def test_series_groups_by_hue_and_x_with_where_and_products():
    rows = [
        {"speed": s, "ttl": t, "cap": c, "seed": seed, "y": s * t + seed, "model": s * t}
        for s in (1.0, 2.0) for t in (10, 20) for c in (0, 5) for seed in (0, 1)
    ]
    spec = PlotSpec(x="speed * ttl", y="y", hue="speed", where={"cap": 0}, reference="model")
    data = series(rows, spec)
    assert list(data) == [1.0, 2.0]
    assert [(x, mean, n) for x, mean, _, _, n in data[1.0]] == [(10.0, 10.5, 2), (20.0, 20.5, 2)]
    assert [ref for *_, ref, _ in data[2.0]] == [20.0, 40.0]


def test_plot_subtitle_names_what_it_averages_over(tmp_path):
    config = parse_config("""\
[sweep]
study = "revocation"
[parameters]
speed = [1, 2]
ttl = [10, 20]
max_ops = [0, 5]
[[plot]]
x = "ttl"
y = "ops_after_revoke"
hue = "speed"
""")
    spec = config.plots[0]
    assert averaged_over(config, spec) == ["max_ops"]
    rows = [{"speed": 1.0, "ttl": 10, "max_ops": 0, "ops_after_revoke": 3}, {"speed": 1.0, "ttl": 20, "max_ops": 0, "ops_after_revoke": 5}]
    path = draw(config, rows, spec, tmp_path / "p.png")
    assert path.read_bytes()[:4] == b"\x89PNG"


def doc_blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", DOCS.read_text(), flags=re.S)


def test_every_toml_config_in_the_docs_is_valid():
    blocks = doc_blocks("toml")
    assert len(blocks) >= 3
    for block in blocks:
        parse_config(block, str(DOCS))


def test_the_docs_first_sweep_runs_as_shown(tmp_path):
    first = doc_blocks("toml")[0]
    (tmp_path / "first.toml").write_text(first)
    result = invoke(["sweep", str(tmp_path / "first.toml"), "--out", str(tmp_path / "first")])
    assert result.exit_code == 0, result.output
    shown = re.search(r"\$ nhipl sweep first\.toml --out first\n(.*?)```", DOCS.read_text(), flags=re.S).group(1)
    assert result.output.replace(str(tmp_path) + "/", "") == shown


def test_the_docs_bad_config_error_is_the_real_one():
    shown = re.search(r"\$ nhipl sweep bad\.toml\n(.*?)```", DOCS.read_text(), flags=re.S).group(1)
    location = shown.split(":")[1]
    bad = "\n" * (int(location) - 4) + '[sweep]\nstudy = "revocation"\n[parameters]\nsped = [1, 2]\n'
    with pytest.raises(ConfigError) as info:
        parse_config(bad, "bad.toml")
    assert info.value.render() + "\n" == shown
