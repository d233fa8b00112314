"""Sweep plots: learning curves (validation metric and training loss) and the per-configuration summary.

Each plot is built by a ``*_figure`` function that returns a bare ``matplotlib.figure.Figure`` (tests read
its titles, labels and legends), and :func:`render_png` renders a figure to PNG bytes. Headless by
construction: the Agg canvas, no pyplot (no global figure state, no GUI backend, nothing to close).
matplotlib is imported inside the functions so that importing this module costs nothing.

Every figure uses matplotlib's constrained layout, so titles, axis labels, rotated tick labels and
legends stay inside the canvas whatever the labels' lengths.
"""

from __future__ import annotations

import io
from typing import Any

Curve = list[tuple[float, float]]  # (step, value)

MAX_LEGEND = 20


def _figure(width: float, height: float, layout: str | None = "constrained"):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100, layout=layout)
    FigureCanvasAgg(fig)
    return fig


def render_png(fig: Any) -> bytes:
    """PNG bytes of a figure made by one of the ``*_figure`` functions."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def _colors(n: int) -> list:
    from matplotlib import colormaps

    cmap = colormaps["tab10" if n <= 10 else "tab20"]
    return [cmap(i % cmap.N) for i in range(max(n, 1))]


def _no_data(ax, what: str) -> None:
    ax.text(0.5, 0.5, f"no {what} yet", ha="center", va="center", transform=ax.transAxes, fontsize=14)
    ax.set_xticks([])
    ax.set_yticks([])


def band(curves: list[Curve]) -> tuple[list[float], list[float], list[float], list[float]]:
    """Steps and, per step, the mean, min and max over the curves that have a value there."""
    by_step: dict[float, list[float]] = {}
    for curve in curves:
        for step, value in curve:
            by_step.setdefault(step, []).append(value)
    steps = sorted(by_step)
    mean = [sum(by_step[s]) / len(by_step[s]) for s in steps]
    lo = [min(by_step[s]) for s in steps]
    hi = [max(by_step[s]) for s in steps]
    return steps, mean, lo, hi


def has_band(curves: list[Curve]) -> bool:
    """Is there a min–max band to draw: seeds that differ somewhere, over more than one step."""
    steps, _, lo, hi = band(curves)
    return len(steps) > 1 and any(h > low for low, h in zip(lo, hi, strict=True))


def _mean_lines(ax, groups: list[tuple[str, list[Curve]]], colors: list, marker: str | None, legend: bool) -> None:
    """One line per configuration: the mean over seeds, with the min–max band of the seeds where there is
    one. A line of one point gets a marker (a line without markers would draw nothing)."""
    for i, (label, curves) in enumerate(groups):
        if not curves:
            continue
        steps, mean, lo, hi = band(curves)
        shown = f"{label} (n={len(curves)})" if legend and i < MAX_LEGEND else None
        ax.plot(steps, mean, marker=marker or ("o" if len(steps) == 1 else None), markersize=3, color=colors[i],
                label=shown)
        if has_band(curves):
            ax.fill_between(steps, lo, hi, color=colors[i], alpha=0.2, linewidth=0)


def curves_figure(groups: list[tuple[str, list[Curve]]], ylabel: str, title: str = "",
                  train: list[list[Curve]] | None = None):
    """Validation curves (left) and training loss (right) per configuration, mean over seeds with a band.

    ``groups``: (configuration label, its runs' validation curves); ``train``: the same runs' training-loss
    curves, in the same order (None or empty: no training panel). A configuration without curves keeps
    its colour (the same as in :func:`final_figure`) but draws nothing.
    """
    with_train = bool(train) and any(any(cs) for cs in train)
    fig = _figure(12 if with_train else 8, 5)
    axes = fig.subplots(1, 2) if with_train else [fig.add_subplot()]
    colors = _colors(len(groups))
    ax = axes[0]
    if not any(curves for _, curves in groups):
        _no_data(ax, "validation curves")
    else:
        _mean_lines(ax, groups, colors, "o", legend=True)
        ax.set_xlabel("step")
        ax.set_ylabel(ylabel)
        ax.grid(True, alpha=0.3)
        # a fixed corner: loc="best" searches every data point for the emptiest spot (slow for big sweeps)
        ax.legend(loc="lower right", fontsize="small", title="configuration (seeds)" if len(groups) <= MAX_LEGEND
                  else f"first {MAX_LEGEND} of {len(groups)} configurations")
    ax.set_title(f"{ylabel} on the validation split" + (" (band: min–max over seeds)" if any(
        has_band(cs) for _, cs in groups) else ""), fontsize="medium")
    if with_train:
        tax = axes[1]
        _mean_lines(tax, [(label, cs) for (label, _), cs in zip(groups, train, strict=True)], colors, None,
                    legend=False)
        tax.set_xlabel("step")
        tax.set_ylabel("training loss")
        tax.grid(True, alpha=0.3)
        tax.set_title("training loss (mean over seeds; colours as on the left)", fontsize="medium")
    fig.suptitle(f"Learning curves: {title}" if title else "Learning curves")
    return fig


def final_figure(groups: list[tuple[str, list[float]]], ylabel: str, title: str = ""):
    """Per-configuration summary: every seed's final metric as a point, the mean over seeds as a bar."""
    from matplotlib.lines import Line2D

    width = min(5 + 0.5 * len(groups), 24)
    fig = _figure(width, 5)
    ax = fig.add_subplot()
    if not any(values for _, values in groups):
        _no_data(ax, "finished runs")
        groups = []
    colors = _colors(len(groups))
    xs, ys, cs, means = [], [], [], []
    for i, (_label, values) in enumerate(groups):
        n = len(values)
        if not n:
            continue
        xs += [i + (j - (n - 1) / 2) * min(0.5 / n, 0.08) for j in range(n)]
        ys += values
        cs += [colors[i]] * n
        means.append((i, sum(values) / n))
    if xs:  # one scatter and one hlines call for all configurations: fast for big sweeps
        ax.scatter(xs, ys, s=18, c=cs, zorder=5)  # above the mean bar: a seed at the mean stays visible
        ax.hlines([m for _, m in means], [i - 0.3 for i, _ in means], [i + 0.3 for i, _ in means],
                  color="black", linewidth=1.5, zorder=4)
        ax.legend(handles=[Line2D([], [], marker="o", linestyle="", color="grey", label="one seed"),
                           Line2D([], [], color="black", linewidth=1.5, label="mean over seeds")],
                  loc="best" if len(groups) <= MAX_LEGEND else "lower right", fontsize="small")
    if groups:
        ax.set_xticks(range(len(groups)))
        ax.set_xticklabels([label for label, _ in groups], rotation=30 if len(groups) > 3 else 0,
                           ha="right" if len(groups) > 3 else "center", fontsize="small")
        ax.set_xlim(-0.6, len(groups) - 0.4)
        ax.set_xlabel("configuration")
        ax.set_ylabel(ylabel)
        ax.grid(True, axis="y", alpha=0.3)
    ax.set_title(f"{ylabel} per configuration" + (f": {title}" if title else ""), fontsize="medium")
    return fig


def confusion_figure(labels: list[str], matrix: list[list[int]], title: str = ""):
    """Confusion matrix as a heat map: rows true class, columns predicted, each cell its count and its share
    of the row (the class's recall on the diagonal)."""
    n = len(labels)
    side = min(max(4.5, 1.0 + 0.75 * n), 16)
    fig = _figure(side + 1.2, side)
    ax = fig.add_subplot()
    longest = max((len(x) for x in labels), default=1)
    if not n:
        _no_data(ax, "test predictions")
        ax.set_title(title)
        return fig
    rows = [sum(r) or 1 for r in matrix]
    share = [[v / rows[i] for v in r] for i, r in enumerate(matrix)]
    image = ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="share of the true class")
    small = n > 8
    for i in range(n):
        for j in range(n):
            ax.text(j, i, f"{matrix[i][j]}" if small else f"{matrix[i][j]}\n{share[i][j]:.0%}", ha="center",
                    va="center", fontsize="x-small" if small else "small",
                    color="white" if share[i][j] > 0.5 else "black")
    ax.set_xticks(range(n))
    ax.set_yticks(range(n))
    ax.set_xticklabels(labels, rotation=45 if n > 3 or longest > 8 else 0, ha="right" if n > 3 or longest > 8
                       else "center", fontsize="small")
    ax.set_yticklabels(labels, fontsize="small")
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title(title, fontsize="medium")
    return fig
