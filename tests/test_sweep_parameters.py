"""The sweep studies' parameter tables: written out, checked against the functions they feed,
and the source of `nhipl sweep --parameters` and of the tables in docs/research.md."""

from __future__ import annotations

import inspect
import pathlib

import pytest

from nhipl import simulator
from nhipl.simulator import LatencyModel, swarm
from nhipl.simulator.sweep import ConfigError, parse_config
from nhipl.simulator.sweep.studies import (
    GENERATOR, LATENCY, REVOCATION_PARAMETERS, SIMULATOR, STUDIES, STUDY, SWARM_PARAMETERS, VARIANT, parameter_table,
)

from .cli import invoke

DOCS = pathlib.Path(__file__).resolve().parent.parent / "docs" / "research.md"

# Keyword arguments of generate/simulate that a sweep does not vary, and why.
NOT_SWEPT = {
    "seed": "every run's seed comes from `[sweep] seeds`",
    "domain": "the identities' SPIFFE trust domain: a name, no effect on the findings",
    "batch_size": "how many requests are decided together: speed only",
    "skip_bad_lines": "a generated trace has no bad lines",
}


def plain_keywords(func) -> dict[str, object]:
    """The keyword arguments of ``func`` with a plain default value (a number, string or bool)."""
    return {
        p.name: p.default
        for p in inspect.signature(func).parameters.values()
        if p.default is not p.empty and isinstance(p.default, (bool, int, float, str))
    }


def test_every_swarm_parameter_feeds_the_function_it_names_with_its_default():
    generator, simulate = plain_keywords(simulator.generate), plain_keywords(simulator.simulate)
    for spec in SWARM_PARAMETERS:
        if spec.goes_to == GENERATOR and spec.keyword in swarm.FAULT_RATES:
            assert spec.default == 0.0 and (spec.minimum, spec.maximum) == (0.0, 1.0), spec.name
        elif spec.goes_to == GENERATOR:
            assert generator[spec.keyword] == spec.default, spec.name
        elif spec.goes_to == SIMULATOR:
            assert simulate[spec.keyword] == spec.default, spec.name
        elif spec.goes_to == LATENCY:
            assert getattr(LatencyModel(), spec.keyword) == simulator.Distribution.parse(spec.default), spec.name
        else:
            assert spec.goes_to == VARIANT and spec.name == "policy"


def test_every_plain_keyword_is_swept_or_said_not_to_be():
    """A new option of the generator or the simulator must be added to the table, or here."""
    table = {spec.keyword for spec in SWARM_PARAMETERS}
    for func in (simulator.generate, simulator.simulate):
        for name in plain_keywords(func):
            assert name in table or name in NOT_SWEPT, f"`{name}` of {func.__name__} is in neither table"
    assert set(swarm.FAULT_RATES) <= table


def test_choices_are_the_simulators_own():
    table = {spec.name: spec for spec in SWARM_PARAMETERS}
    assert table["topology"].choices == swarm.TOPOLOGIES
    assert table["approvals"].choices == simulator.APPROVAL_SCOPES


def test_revocation_parameters_are_read_by_the_study():
    assert [spec.goes_to for spec in REVOCATION_PARAMETERS] == [STUDY] * 5 + [VARIANT]
    metrics = STUDIES["revocation"].run({"agents": 1, "speed": 2.0, "ttl": 3, "arrivals": "steady"}, 0, None)
    assert metrics["speed_x_ttl"] == 6.0


def test_a_run_passes_each_parameter_where_the_table_says():
    base = {"agents": 4, "tasks": 5, "steps_per_task": 2, "approvals": "task", "approval_wait": "const:1"}
    run = STUDIES["swarm"].run
    assert run(base, 0, None)["overreach"] == 0
    assert run(base | {"drift": 1.0}, 0, None)["overreach.denied"] > 0  # a fault rate reaches the generator
    missed = base | {"missed_revocation": 1.0}
    assert run(missed | {"revocation_grace": 0.0}, 0, None)["revocation_gap.valid_after_task_end"] > 0
    assert run(missed | {"revocation_grace": 1e9}, 0, None)["revocation_gap.valid_after_task_end"] == 0  # the simulator's


def test_a_value_outside_the_choices_is_a_config_error():
    with pytest.raises(ConfigError, match="`approvals` must be one of `call`, `task`, not `always`"):
        parse_config('[sweep]\nstudy = "swarm"\n[parameters]\napprovals = "always"\n', "s.toml")


@pytest.mark.parametrize("study", list(STUDIES))
def test_the_docs_show_the_table(study):
    assert parameter_table(study) in DOCS.read_text(encoding="utf-8")


def test_the_command_prints_the_tables():
    result = invoke(["sweep", "--parameters"])
    assert result.exit_code == 0
    for study in STUDIES:
        assert f"study `{study}`" in result.stdout and parameter_table(study) in result.stdout
