"""Sweep plots as PNG bytes: learning curves and final metric per configuration.

Headless by construction: a bare ``matplotlib.figure.Figure`` rendered by the Agg canvas, no pyplot
(no global figure state, no GUI backend, nothing to close). matplotlib is imported inside the
functions so that importing this module costs nothing.
"""

from __future__ import annotations

import io

Curve = list[tuple[float, float]]  # (step, value)

MAX_LEGEND = 20


def _figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    # fixed margins rather than constrained/tight layout: those draw the figure twice
    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def _png(fig) -> bytes:
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


def curves_png(groups: list[tuple[str, list[Curve]]], ylabel: str, title: str = "") -> bytes:
    """One line per configuration: the mean over seeds, with the min–max band of the seeds.

    Configurations without curves keep their colour (the same as in :func:`final_png`) but draw nothing.
    """
    fig = _figure(8, 5)
    ax = fig.add_subplot()
    fig.subplots_adjust(left=0.1, right=0.97, bottom=0.11, top=0.93)
    if not any(curves for _, curves in groups):
        _no_data(ax, "validation curves")
    colors = _colors(len(groups))
    for i, (label, curves) in enumerate(groups):
        if not curves:
            continue
        steps, mean, lo, hi = band(curves)
        shown = label if i < MAX_LEGEND else None
        n = len(curves)
        ax.plot(steps, mean, marker="o", markersize=3, color=colors[i], label=f"{shown} (n={n})" if shown else None)
        if n > 1:
            ax.fill_between(steps, lo, hi, color=colors[i], alpha=0.2, linewidth=0)
    if any(curves for _, curves in groups):
        ax.set_xlabel("step")
        ax.set_ylabel(ylabel)
        ax.grid(True, alpha=0.3)
        # a fixed corner: loc="best" searches every data point for the emptiest spot (slow for big sweeps)
        ax.legend(loc="lower right", fontsize="small", title=None if len(groups) <= MAX_LEGEND
                  else f"first {MAX_LEGEND} of {len(groups)}")
    ax.set_title(title)
    return _png(fig)


def final_png(groups: list[tuple[str, list[float]]], ylabel: str, title: str = "") -> bytes:
    """Final metric per configuration: every seed as a point, the mean as a bar (empty: no finished run)."""
    width = min(4 + 0.5 * len(groups), 24)
    fig = _figure(width, 5)
    ax = fig.add_subplot()
    if not any(values for _, values in groups):
        _no_data(ax, "finished runs")
        groups = []
    fig.subplots_adjust(left=0.1, right=0.98, bottom=0.25 if len(groups) > 3 else 0.1, top=0.93)
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
        ax.scatter(xs, ys, s=18, c=cs, zorder=3)
        ax.hlines([m for _, m in means], [i - 0.3 for i, _ in means], [i + 0.3 for i, _ in means],
                  color="black", linewidth=1.5, zorder=4)
    if groups:
        ax.set_xticks(range(len(groups)))
        ax.set_xticklabels([label for label, _ in groups], rotation=30 if len(groups) > 3 else 0,
                           ha="right" if len(groups) > 3 else "center", fontsize="small")
        ax.set_xlim(-0.6, len(groups) - 0.4)
        ax.set_ylabel(ylabel)
        ax.grid(True, axis="y", alpha=0.3)
    ax.set_title(title)
    return _png(fig)


def confusion_png(labels: list[str], matrix: list[list[int]], title: str = "") -> bytes:
    """Confusion matrix as a heat map: rows true class, columns predicted, each cell its count and its share
    of the row (the class's recall on the diagonal)."""
    n = len(labels)
    side = min(max(4.5, 1.0 + 0.75 * n), 16)
    fig = _figure(side + 1.2, side)
    ax = fig.add_subplot()
    longest = max((len(x) for x in labels), default=1)
    margin = min(0.12 + 0.012 * longest, 0.4)  # room for the tick labels inside the canvas
    fig.subplots_adjust(left=margin, right=0.95, bottom=margin, top=0.9)
    if not n:
        _no_data(ax, "test predictions")
        ax.set_title(title)
        return _png(fig)
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
    return _png(fig)
