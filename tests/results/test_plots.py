"""The sweep plots say what they plot: read the figures' artists (titles, labels, legends, data), not pixels,
and check that every text sits inside the canvas."""

from __future__ import annotations

import pytest

from pipeline.results import aggregation, plots
from pipeline.results.runs import load_sweep
from tests.results.make_runs import grid_sweep, write_run


def texts_outside_canvas(fig) -> list[str]:
    """What is drawn outside the figure, after a real draw: each axes' tight box (title, axis labels,
    the tick labels actually drawn, legend) and the suptitle."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    box = fig.bbox
    parts = [(f"axes {i} ({ax.get_title()!r})", ax.get_tightbbox(renderer)) for i, ax in enumerate(fig.axes)]
    if fig.get_suptitle():
        parts.append((fig.get_suptitle(), fig._suptitle.get_window_extent(renderer)))
    return [name for name, e in parts
            if e.x0 < box.x0 - 0.5 or e.y0 < box.y0 - 0.5 or e.x1 > box.x1 + 0.5 or e.y1 > box.y1 + 0.5]


@pytest.fixture
def sweep(tmp_path):
    root = tmp_path / "2024-01-01_10-00-00"
    grid_sweep(root, lrs=("1e-4", "2e-4", "3e-4"), seeds=(0, 1, 2), train_lines=3)
    write_run(root / "9", ["trainer.lr=9e-4", "seed=0"], state="failed")
    return load_sweep(root)


def test_curves_show_validation_and_training_loss(sweep):
    fig = aggregation.sweep_figures(sweep, "val_macro_f1")["curves.png"]
    val, train = fig.axes
    assert "Learning curves" in fig.get_suptitle() and "2024-01-01_10-00-00" in fig.get_suptitle()
    assert "macro_f1" in val.get_title() and "validation" in val.get_title()
    assert val.get_xlabel() == "step" and val.get_ylabel() == "macro_f1"
    legend = [t.get_text() for t in val.get_legend().get_texts()]
    assert legend == ["lr=1e-4 (n=3)", "lr=2e-4 (n=3)", "lr=3e-4 (n=3)", "lr=9e-4 (n=1)"]
    # the mean over seeds of the last validation point, per configuration
    lr1 = val.get_lines()[0]
    assert lr1.get_ydata()[-1] == pytest.approx((0.70 + 0.71 + 0.72) / 3)
    assert train.get_ylabel() == "training loss" and train.get_xlabel() == "step"
    assert "training loss" in train.get_title()
    assert len(train.get_lines()) == 4  # one per configuration (the failed run logged training lines too)
    xs = train.get_lines()[0].get_xdata()
    assert len(xs) == 9 and max(xs) < 30  # 3 train lines per epoch, 3 epochs
    assert texts_outside_canvas(fig) == []


def test_final_is_a_per_configuration_summary(sweep):
    fig = aggregation.sweep_figures(sweep, "val_macro_f1")["final.png"]
    (ax,) = fig.axes
    assert ax.get_title().startswith("val_macro_f1 per configuration")
    assert ax.get_ylabel() == "val_macro_f1" and ax.get_xlabel() == "configuration"
    assert [t.get_text() for t in ax.get_xticklabels()] == ["lr=1e-4", "lr=2e-4", "lr=3e-4", "lr=9e-4"]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["one seed", "mean over seeds"]
    (points,) = ax.collections[:1]
    assert sorted(y for _, y in points.get_offsets()) == pytest.approx(
        sorted(0.70 + 0.05 * li + 0.01 * s for li in range(3) for s in range(3)))
    means = sorted(seg[0][1] for seg in ax.collections[1].get_segments())
    assert means == pytest.approx([0.71, 0.76, 0.81])  # the failed configuration has no mean
    assert texts_outside_canvas(fig) == []


def test_long_labels_stay_inside_the_canvas():
    """Long configuration names (rotated tick labels) and a long y label: still all inside."""
    labels = [f"lr={i}e-4 warmup_ratio=0.{i} model=bert-base-multilingual-cased" for i in range(1, 8)]
    fig = plots.final_figure([(lab, [0.8, 0.81, 0.79]) for lab in labels], "test_macro_f1", "2024-01-01_10-00-00")
    assert texts_outside_canvas(fig) == []
    fig = plots.curves_figure([(lab, [[(10, 0.5), (20, 0.6)]]) for lab in labels], "macro_f1", "x",
                              [[[(5, 1.0), (15, 0.5)]] for _ in labels])
    assert texts_outside_canvas(fig) == []
    assert plots.render_png(fig)[:8] == b"\x89PNG\r\n\x1a\n"


def test_empty_sweep_says_so(tmp_path):
    write_run(tmp_path / "s" / "0", ["seed=0"], state="started")
    figs = aggregation.sweep_figures(load_sweep(tmp_path / "s"))
    assert any("no validation curves yet" in t.get_text() for t in figs["curves.png"].axes[0].texts)
    assert any("no finished runs yet" in t.get_text() for t in figs["final.png"].axes[0].texts)
