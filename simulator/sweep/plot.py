"""Plots of a results table: the mean of ``y`` across seeds against ``x``, one
line per value of ``hue``, with a band across seeds (95% confidence interval of
the mean, or ± one standard deviation).

Drawn with matplotlib's Agg canvas on a bare :class:`~matplotlib.figure.Figure`:
no pyplot, no global state, no display needed.
"""

from __future__ import annotations

import math
import statistics
from pathlib import Path

from .config import PlotSpec, SweepConfig
from .table import read_results

# Two-sided 95% quantiles of Student's t for 1..30 degrees of freedom.
_T95 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
        2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
        2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042)


def band(values: list[float], kind: str) -> tuple[float, float]:
    """(mean, half-width of the band) of ``values``."""
    mean = statistics.fmean(values)
    if kind == "none" or len(values) < 2:
        return mean, 0.0
    sd = statistics.stdev(values)
    if kind == "sd":
        return mean, sd
    t = _T95[len(values) - 2] if len(values) - 1 <= len(_T95) else 1.96
    return mean, t * sd / math.sqrt(len(values))


def _label_key(value) -> str:
    """How a hue value is named in a plot's `labels` table: `0`, `0.5`, `mesh`."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def x_value(row: dict, x: str):
    names = [n.strip() for n in x.split("*")]
    if len(names) == 1:
        return row.get(names[0])
    product = 1.0
    for name in names:
        value = row.get(name)
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            return None
        product *= value
    return product


def series(rows: list[dict], spec: PlotSpec) -> dict:
    """hue value -> sorted list of (x, mean, half-width, reference mean, n)."""
    groups: dict = {}
    for row in rows:
        if any(row.get(k) != v for k, v in spec.where.items()):
            continue
        x, y = x_value(row, spec.x), row.get(spec.y)
        if x is None or not isinstance(y, (int, float)) or isinstance(y, bool) or math.isnan(y):
            continue
        hue = row.get(spec.hue) if spec.hue else None
        ref = row.get(spec.reference) if spec.reference else None
        groups.setdefault(hue, {}).setdefault(x, ([], []))
        groups[hue][x][0].append(float(y))
        if isinstance(ref, (int, float)):
            groups[hue][x][1].append(float(ref))
    out = {}
    for hue, by_x in groups.items():
        points = []
        for x, (ys, refs) in by_x.items():
            mean, half = band(ys, spec.band)
            points.append((x, mean, half, statistics.fmean(refs) if refs else None, len(ys)))
        points.sort(key=lambda p: (isinstance(p[0], str), p[0]))
        out[hue] = points
    return dict(sorted(out.items(), key=lambda item: (item[0] is None, isinstance(item[0], str), item[0] if item[0] is not None else 0)))


def averaged_over(config: SweepConfig, spec: PlotSpec) -> list[str]:
    """Swept parameters the plot neither shows nor fixes: it averages over them."""
    shown = {n.strip() for n in spec.x.split("*")} | {spec.hue} | set(spec.where)
    swept = [n for n in config.order if n in config.axes or n in config.ranges]
    return [n for n in swept if n not in shown]


def draw(config: SweepConfig, rows: list[dict], spec: PlotSpec, path: Path) -> Path:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 4.5), dpi=110, layout="constrained")
    ax = fig.add_subplot()
    data = series(rows, spec)
    categorical = any(isinstance(p[0], str) for points in data.values() for p in points)
    labels: list = []
    if categorical:
        present = {p[0] for points in data.values() for p in points}
        declared = config.axes.get(spec.x, ())  # the config's order, where it lists them
        labels = [v for v in declared if v in present] + sorted(present - set(declared), key=str)
    palette = [f"C{i}" for i in range(10)]
    for index, (hue, points) in enumerate(data.items()):
        color = palette[index % len(palette)]
        xs = [labels.index(p[0]) if categorical else p[0] for p in points]
        means = [p[1] for p in points]
        halves = [p[2] for p in points]
        label = spec.labels.get(_label_key(hue)) or (f"{spec.hue} = {hue}" if spec.hue else spec.y)
        ax.plot(xs, means, marker="o", markersize=4, color=color, label=label)
        if any(halves):
            low = [m - h for m, h in zip(means, halves)]
            if spec.ylog:
                low = [max(v, min(m for m in means if m > 0) / 10 if any(m > 0 for m in means) else 1e-9) for v in low]
            ax.fill_between(xs, low, [m + h for m, h in zip(means, halves)], color=color, alpha=0.2, linewidth=0)
        refs = [p[3] for p in points]
        if spec.reference and all(r is not None for r in refs):
            ax.plot(xs, refs, linestyle="--", color=color, linewidth=1,
                    label=(spec.reference_label or spec.reference) if index == 0 else None)
    from matplotlib.ticker import NullFormatter, ScalarFormatter

    if spec.xlog and not categorical:
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(ScalarFormatter())
        ax.xaxis.set_minor_formatter(NullFormatter())
    if spec.ylog:
        ax.set_yscale("log")
        ax.yaxis.set_major_formatter(ScalarFormatter())
        ax.yaxis.set_minor_formatter(NullFormatter())
    if categorical:
        ax.set_xticks(range(len(labels)), [str(label) for label in labels])
        ax.margins(x=0.1)
    else:
        ticks = sorted({p[0] for points in data.values() for p in points})
        if 1 < len(ticks) <= 12:  # few x values: label each of them
            ax.set_xticks(ticks, [_label_key(t) for t in ticks])
    ax.set_xlabel(spec.xlabel or spec.x.replace("*", "×"))
    ax.set_ylabel(spec.ylabel or spec.y)
    seeds = len(config.seeds)
    band_text = {"ci95": "95% CI of the mean", "sd": "± 1 sd", "none": "no band"}[spec.band]
    subtitle = f"mean over {seeds} seeds, band: {band_text}"
    if spec.where:
        subtitle += "; " + ", ".join(f"{k} = {v}" for k, v in spec.where.items())
    over = averaged_over(config, spec)
    if over:
        subtitle += "; averaged over " + ", ".join(over)
    ax.set_title((spec.title + "\n" if spec.title else "") + subtitle, fontsize=10)
    ax.grid(True, alpha=0.3)
    if data:
        ax.legend(fontsize=8)
    fig.savefig(path, metadata={"Software": None} if path.suffix == ".png" else None)
    return path


def draw_all(config: SweepConfig, table: Path, folder: Path) -> list[Path]:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        from .executors import ExecutorError

        raise ExecutorError("plots need matplotlib; install it with `pip install 'nhipl[sweep]'`") from None
    _, rows = read_results(table)
    return [draw(config, rows, spec, folder / spec.file) for spec in config.plots]
