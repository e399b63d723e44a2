"""Sweep configs: TOML in, a validated :class:`SweepConfig` out.

Every problem is a :class:`ConfigError` located at ``file:line:col`` where the
offending key can be found in the text (``file: key`` otherwise), with a help
line where there is a fix to suggest.

```toml
[sweep]
study = "revocation"      # or "swarm" (the default)
seeds = 5                 # seeds per point: a count, or a list of seeds
base_seed = 0             # the first seed when `seeds` is a count
mode = "grid"             # or "random"
samples = 20              # points drawn in random mode

[parameters]              # a value: fixed; a list: an axis (grid) or choices (random)
speed = [0.5, 1, 2]       # a table {min, max, log}: a range, random mode only
ttl = [30, 60, 120]

[policies]                # named policy variants for the `policy` parameter
strict = "strict.nhipl"   # a file, relative to the config
gated = { text = "..." }  # or inline text

[[plot]]
x = "ttl"
y = "exposure_after_revoke_s"
hue = "speed"
```
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from nhipl.errors import LocatedError, NhiplError, PolicyError, did_you_mean
from nhipl.source import read_text
from nhipl.tomltext import TomlLocator, parse_toml

from .studies import BUILTIN_POLICY, STUDIES, Parameter, Study, describe as _kind


class ConfigError(NhiplError):
    """A bad sweep config. ``location`` is ``file:line:col`` or ``file: key``."""

    def __init__(self, location: str, message: str, help: str | None = None):
        self.location = location
        self.message = message
        self.help = help
        super().__init__(self.render())

    def render(self) -> str:
        text = f"{self.location}: {self.message}"
        if self.help:
            text += f"\n  help: {self.help}"
        return text


@dataclass(frozen=True)
class Range:
    """A continuous range for random sampling."""

    minimum: float
    maximum: float
    log: bool = False


@dataclass(frozen=True)
class PlotSpec:
    x: str
    y: str
    hue: str | None = None
    where: dict = field(default_factory=dict)
    file: str = ""
    title: str = ""
    xlabel: str = ""
    ylabel: str = ""
    xlog: bool = False
    ylog: bool = False
    band: str = "ci95"
    reference: str | None = None
    labels: dict = field(default_factory=dict)  # hue value (as text) -> legend label
    reference_label: str = ""


@dataclass(frozen=True)
class PolicyVariant:
    """A named policy: ``text`` replaces the study's own policy, or with
    ``extends`` is added to it (for a swarm: to the policy generated with it)."""

    name: str
    text: str
    source: str
    extends: bool = False


@dataclass(frozen=True)
class SweepConfig:
    path: str
    name: str
    study: Study
    seeds: tuple[int, ...]
    mode: str
    samples: int
    sample_seed: int
    fixed: dict                 # name -> value
    axes: dict                  # name -> tuple of values (grid axes, or random choices)
    ranges: dict                # name -> Range (random mode)
    policies: dict              # name -> PolicyVariant
    plots: tuple[PlotSpec, ...]
    order: tuple[str, ...]      # parameter names in the order the config gives them


_TOP = {"sweep": "the run settings", "parameters": "the parameter grid", "policies": "policy variants", "plot": "plots"}
_SWEEP_KEYS = ("name", "study", "seeds", "base_seed", "mode", "samples", "sample_seed")
_PLOT_KEYS = ("x", "y", "hue", "where", "file", "title", "xlabel", "ylabel", "xlog", "ylog", "band", "reference", "labels", "reference_label")
_BANDS = ("ci95", "sd", "none")
_MAX_RUNS = 1_000_000


class _Locator:
    """``file:line:col`` of a key in the config's text (see :class:`nhipl.tomltext.TomlLocator`);
    ``file: key`` when the key was not found written out."""

    def __init__(self, text: str, source: str):
        self.source = source
        self.locator = TomlLocator(text)

    def at(self, *path: str | int) -> str:
        found = self.locator.find(*path)
        if found is not None:
            return f"{self.source}:{found[0]}:{found[1]}"
        return f"{self.source}: {'.'.join(str(p) for p in path)}" if path else self.source


def load_config(path: str | os.PathLike) -> SweepConfig:
    """Read and validate a sweep config file."""
    source = os.fspath(path)
    try:
        text = read_text(source)
    except LocatedError as err:
        raise ConfigError(err.location, err.message, err.help) from None
    return parse_config(text, source)


def parse_config(text: str, source: str = "<config>") -> SweepConfig:
    """Validate config text; ``source`` names it in errors and anchors relative paths."""
    try:
        doc = parse_toml(text, source)
    except LocatedError as err:
        raise ConfigError(err.location, err.message) from None
    return _Validator(doc, _Locator(text, source), source).config()


class _Validator:
    def __init__(self, doc: dict, where: _Locator, source: str):
        self.doc = doc
        self.where = where
        self.source = source
        self.base_dir = os.path.dirname(os.path.abspath(source)) if source != "<config>" else os.getcwd()

    def fail(self, path: tuple, message: str, help: str | None = None) -> ConfigError:
        return ConfigError(self.where.at(*path), message, help)

    def unknown(self, path: tuple, key: str, known) -> ConfigError:
        hint = did_you_mean(key, known)
        return self.fail(path + (key,), f"unknown key `{key}`" + (f" in `[{'.'.join(path)}]`" if path else ""),
                         hint or f"expected one of {', '.join(f'`{k}`' for k in known)}")

    def table(self, key: str) -> dict:
        value = self.doc.get(key, {})
        if not isinstance(value, dict):
            raise self.fail((key,), f"`{key}` must be a table, written `[{key}]`")
        return value

    # -- [sweep] -------------------------------------------------------------

    def config(self) -> SweepConfig:
        for key in self.doc:
            if key not in _TOP:
                raise self.unknown((), key, _TOP)
        sweep = self.table("sweep")
        for key in sweep:
            if key not in _SWEEP_KEYS:
                raise self.unknown(("sweep",), key, _SWEEP_KEYS)
        name = sweep.get("name", Path(self.source).stem if self.source != "<config>" else "sweep")
        if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
            raise self.fail(("sweep", "name"), "`name` must be a string of letters, digits, `_`, `-` and `.`")
        study_name = sweep.get("study", "swarm")
        if not isinstance(study_name, str) or study_name not in STUDIES:
            hint = did_you_mean(str(study_name), STUDIES) if isinstance(study_name, str) else None
            raise self.fail(("sweep", "study"), f"unknown study `{study_name}`",
                            hint or f"expected one of {', '.join(f'`{s}`' for s in STUDIES)}")
        study = STUDIES[study_name]
        base_seed = self.integer(sweep, ("sweep", "base_seed"), 0, minimum=0)
        seeds = self.seeds(sweep.get("seeds", 3), base_seed)
        mode = sweep.get("mode", "grid")
        if mode not in ("grid", "random"):
            raise self.fail(("sweep", "mode"), f"`mode` must be `grid` or `random`, not `{mode}`")
        if mode == "random" and "samples" not in sweep:
            raise self.fail(("sweep", "mode"), "random mode needs `samples`, the number of points to draw",
                            "add `samples = 20` to `[sweep]`")
        samples = self.integer(sweep, ("sweep", "samples"), 0, minimum=1 if mode == "random" else 0)
        if mode == "grid" and "samples" in sweep:
            raise self.fail(("sweep", "samples"), "`samples` is for random mode only", 'set `mode = "random"` or remove `samples`')
        sample_seed = self.integer(sweep, ("sweep", "sample_seed"), base_seed, minimum=0)
        policies = self.policies()
        fixed, axes, ranges, order = self.parameters(study, mode, policies)
        points = samples if mode == "random" else math.prod(len(v) for v in axes.values())
        if points * len(seeds) > _MAX_RUNS:
            raise self.fail(("parameters",), f"the sweep has {points * len(seeds)} runs, more than {_MAX_RUNS}",
                            "use fewer values per axis, or random mode")
        config = SweepConfig(self.source, name, study, seeds, mode, samples, sample_seed,
                             fixed, axes, ranges, policies, (), order)
        plots = self.plots(config)
        return SweepConfig(self.source, name, study, seeds, mode, samples, sample_seed,
                           fixed, axes, ranges, policies, plots, order)

    def integer(self, table: dict, path: tuple, default: int, minimum: int) -> int:
        value = table.get(path[-1], default)
        if type(value) is not int:
            raise self.fail(path, f"`{path[-1]}` must be an integer, not {_kind(value)}")
        if value < minimum:
            raise self.fail(path, f"`{path[-1]}` must be at least {minimum}, not {value}")
        return value

    def seeds(self, value: object, base_seed: int) -> tuple[int, ...]:
        path = ("sweep", "seeds")
        if type(value) is int:
            if value < 1:
                raise self.fail(path, f"`seeds` must be at least 1, not {value}")
            if value > _MAX_RUNS:
                raise self.fail(path, f"`seeds` must be at most {_MAX_RUNS}, not {value}")
            return tuple(range(base_seed, base_seed + value))
        if isinstance(value, list):
            if not value:
                raise self.fail(path, "`seeds` is an empty list", "give a count (`seeds = 5`) or a list of seeds")
            for seed in value:
                if type(seed) is not int or seed < 0:
                    raise self.fail(path, f"every seed must be an integer of at least 0, not {_kind(seed)}")
            if len(set(value)) != len(value):
                raise self.fail(path, "`seeds` lists a seed twice")
            return tuple(value)
        raise self.fail(path, f"`seeds` must be a count or a list of integers, not {_kind(value)}")

    # -- [policies] ----------------------------------------------------------

    def policies(self) -> dict[str, PolicyVariant]:
        import nhipl

        out: dict[str, PolicyVariant] = {}
        for name, value in self.table("policies").items():
            path = ("policies", name)
            if name == BUILTIN_POLICY:
                raise self.fail(path, f"`{BUILTIN_POLICY}` names the study's own policy", "choose another name")
            if isinstance(value, str):
                value = {"file": value}
            if not isinstance(value, dict):
                raise self.fail(path, f"policy `{name}` must be a file path or a table like `{{ text = \"...\" }}`")
            for key in value:
                if key not in ("text", "file", "extends"):
                    raise self.unknown(path, key, ("text", "file", "extends"))
            if ("text" in value) == ("file" in value):
                raise self.fail(path, f"policy `{name}` needs one of `text` and `file`")
            extends = value.get("extends")
            if extends not in (None, BUILTIN_POLICY):
                raise self.fail(path, f"`extends` can only name `{BUILTIN_POLICY}`, not `{extends}`")
            if "file" in value:
                if not isinstance(value["file"], str):
                    raise self.fail(path, "`file` must be a path")
                file = value["file"] if os.path.isabs(value["file"]) else os.path.join(self.base_dir, value["file"])
                try:
                    policy_text = read_text(file)
                except LocatedError as err:
                    if err.code == "file-not-found":
                        raise self.fail(path, f"policy file `{value['file']}` not found", "paths are relative to the config file") from None
                    raise self.fail(path, f"cannot read policy file `{value['file']}`: {err.message}") from None
                source = file
            else:
                if not isinstance(value["text"], str):
                    raise self.fail(path, "`text` must be a string of policy text")
                policy_text, source = value["text"], f"{self.source}[policies.{name}]"
            variant = PolicyVariant(name, policy_text, source, extends is not None)
            try:
                nhipl.loads(variant.text, source=variant.source)
            except PolicyError as err:
                raise self.fail(path, f"policy `{name}` does not load:\n{err.render()}") from None
            out[name] = variant
        return out

    # -- [parameters] --------------------------------------------------------

    def parameters(self, study: Study, mode: str, policies: dict):
        known = study.parameters()
        fixed: dict = {}
        axes: dict = {}
        ranges: dict = {}
        order: list[str] = []
        for name, value in self.table("parameters").items():
            path = ("parameters", name)
            spec = known.get(name)
            if spec is None:
                hint = did_you_mean(name, known)
                raise self.fail(path, f"study `{study.name}` has no parameter `{name}`",
                                hint or f"its parameters: {', '.join(f'`{k}`' for k in known)}")
            order.append(name)
            if isinstance(value, list):
                if not value:
                    raise self.fail(path, f"`{name}` is an empty list", "give at least one value")
                values = tuple(self.value(spec, v, path, policies) for v in value)
                if len(set(map(repr, values))) != len(values):
                    raise self.fail(path, f"`{name}` lists a value twice")
                axes[name] = values
            elif isinstance(value, dict):
                if mode != "random":
                    raise self.fail(path, f"`{name}` is a range, and ranges are for random mode only",
                                    'set `mode = "random"` in `[sweep]`, or list the values')
                ranges[name] = self.range(spec, value, path)
            else:
                fixed[name] = self.value(spec, value, path, policies)
        return fixed, axes, ranges, tuple(order)

    def value(self, spec: Parameter, value: object, path: tuple, policies: dict):
        if spec.kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        problem = spec.problem(value)
        if problem:
            raise self.fail(path, problem, spec.help or None)
        if spec.name == "policy" and value != BUILTIN_POLICY and value not in policies:
            hint = did_you_mean(value, list(policies) + [BUILTIN_POLICY])
            raise self.fail(path, f"no policy variant `{value}`",
                            hint or "define it in `[policies]`, or use `builtin` for the study's own policy")
        return value

    def range(self, spec: Parameter, value: dict, path: tuple) -> Range:
        for key in value:
            if key not in ("min", "max", "log"):
                raise self.unknown(path, key, ("min", "max", "log"))
        if spec.kind not in (int, float):
            raise self.fail(path, f"`{spec.name}` is not a number, so it cannot be a range", "list its values instead")
        if "min" not in value or "max" not in value:
            raise self.fail(path, f"the range of `{spec.name}` needs both `min` and `max`")
        low, high = (self.value(spec, value[k], path, {}) for k in ("min", "max"))
        if low > high:
            raise self.fail(path, f"the range of `{spec.name}` has `min` {low} above `max` {high}")
        log = value.get("log", False)
        if not isinstance(log, bool):
            raise self.fail(path, "`log` must be true or false")
        if log and low <= 0:
            raise self.fail(path, f"a log range needs `min` above 0, not {low}")
        return Range(low, high, log)

    # -- [[plot]] ------------------------------------------------------------

    def plots(self, config: SweepConfig) -> tuple[PlotSpec, ...]:
        raw = self.doc.get("plot", [])
        if isinstance(raw, dict):
            raw = [raw]
        if not isinstance(raw, list) or not all(isinstance(p, dict) for p in raw):
            raise self.fail(("plot",), "plots are tables, written `[[plot]]`")
        parameters = set(config.study.parameters()) | {"seed"}
        metrics = None
        out = []
        files: set[str] = set()
        for index, plot in enumerate(raw):
            path = ("plot", index)
            for key in plot:
                if key not in _PLOT_KEYS:
                    raise self.unknown(path, key, _PLOT_KEYS)
            for key in ("x", "y"):
                if key not in plot:
                    raise self.fail(path, f"a plot needs `{key}`")
            if metrics is None:
                metrics = set(config.study.metrics())
            columns = parameters | metrics
            for key in ("x", "y", "hue", "reference"):
                if key in plot:
                    self.column(plot[key], path + (key,), columns, allow_product=key == "x")
            where = plot.get("where", {})
            if not isinstance(where, dict):
                raise self.fail(path + ("where",), "`where` must be a table of parameter values, like `{ max_ops = 0 }`")
            for key in where:
                if key not in parameters:
                    hint = did_you_mean(key, parameters)
                    raise self.fail(path + ("where",), f"`where` names `{key}`, which is not a parameter", hint)
            labels = plot.get("labels", {})
            if not isinstance(labels, dict) or not all(isinstance(v, str) for v in labels.values()):
                raise self.fail(path + ("labels",), "`labels` must be a table of legend labels, like `{ 0 = \"no cap\" }`")
            band = plot.get("band", "ci95")
            if band not in _BANDS:
                raise self.fail(path + ("band",), f"`band` must be one of {', '.join(f'`{b}`' for b in _BANDS)}, not `{band}`")
            for key in ("title", "xlabel", "ylabel", "file", "reference_label"):
                if key in plot and not isinstance(plot[key], str):
                    raise self.fail(path + (key,), f"`{key}` must be a string")
            for key in ("xlog", "ylog"):
                if key in plot and not isinstance(plot[key], bool):
                    raise self.fail(path + (key,), f"`{key}` must be true or false")
            file = plot.get("file") or f"{_slug(plot['y'])}-vs-{_slug(plot['x'])}" + (f"-by-{_slug(plot['hue'])}" if plot.get("hue") else "") + ".png"
            if not file.endswith((".png", ".svg", ".pdf")) or "/" in file or "\\" in file or file.startswith("."):
                raise self.fail(path + ("file",), f"`file` must be a file name ending in `.png`, `.svg` or `.pdf`, not `{file}`")
            if file in files:
                raise self.fail(path + ("file",), f"two plots write `{file}`", "give each plot its own `file`")
            files.add(file)
            out.append(PlotSpec(
                x=plot["x"], y=plot["y"], hue=plot.get("hue"), where=dict(where), file=file,
                title=plot.get("title", ""), xlabel=plot.get("xlabel", ""), ylabel=plot.get("ylabel", ""),
                xlog=plot.get("xlog", False), ylog=plot.get("ylog", False), band=band,
                reference=plot.get("reference"), labels=dict(labels),
                reference_label=plot.get("reference_label", ""),
            ))
        return tuple(out)

    def column(self, value: object, path: tuple, columns: set[str], allow_product: bool) -> None:
        if not isinstance(value, str):
            raise self.fail(path, f"`{path[-1]}` must be a column name")
        names = [n.strip() for n in value.split("*")] if allow_product else [value]
        for name in names:
            if name not in columns:
                hint = did_you_mean(name, columns)
                raise self.fail(path, f"no column `{name}` in this sweep's results",
                                hint or "plot a parameter, `seed`, or a metric column (see docs/research.md)")


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", name).strip("_")

