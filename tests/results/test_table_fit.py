"""Every table fits the terminal: results (per run, --by-seed, several sweeps), status and predict at 80
and 120 columns, through the one renderer in pipeline.results.tables."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from pipeline.cli.cli import app
from pipeline.launch import sweep_status as S
from pipeline.results import compare, formats, tables, views
from pipeline.results.runs import load_sweep, load_sweeps
from tests.results.make_runs import grid_sweep, val_value, write_run
from tests.table_fit import assert_fits, render

WIDTHS = (80, 120)
LONG_ERROR = ("RuntimeError: CUDA out of memory. Tried to allocate 2.00 GiB (GPU 0; 39.59 GiB total capacity; "
              "37.12 GiB already allocated; 1.02 GiB free)")


def header_of(text: str) -> str:
    """The header line: the one above the table's rule."""
    lines = text.splitlines()
    return next(lines[i - 1] for i, ln in enumerate(lines) if ln.startswith("──")) + " "


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    """3 lr x 2 seeds x 2 warmups with long override names, a constant one, a failed and a running job."""
    root = tmp_path_factory.mktemp("wide") / "2024-01-01_10-00-00"
    expected = {}
    num = 0
    for li, lr in enumerate(("1e-4", "2e-4", "3e-4")):
        for seed in (0, 1):
            for warm in ("0.06", "0.1"):
                ov = [f"trainer.lr={lr}", f"seed={seed}", f"trainer.warmup_ratio={warm}",
                      f"model.name=minilm{li % 2}", f"data.name=bbc{seed}", "data.max_rows=400"]
                curve = [val_value(li, seed, e, 3) for e in (1, 2, 3)]
                write_run(root / str(num), ov, curve=curve, wall_time_s=186.5 + num)
                expected[num] = [str(num), lr, str(seed), warm, f"minilm{li % 2}", f"bbc{seed}", "COMPLETED",
                                 f"{curve[-1]:.4f}"]
                num += 1
    ov = ["trainer.lr=9e-4", "seed=0", "trainer.warmup_ratio=0.1", "model.name=minilm0", "data.name=bbc0",
          "data.max_rows=400"]
    write_run(root / str(num), ov, state="failed", error=LONG_ERROR)
    expected[num] = [str(num), "9e-4", "0", "0.1", "minilm0", "bbc0", "FAILED", "RuntimeError: CUDA"]
    write_run(root / str(num + 1), [*ov[:1], "seed=1", *ov[2:]], state="running")
    expected[num + 1] = [str(num + 1), "9e-4", "1", "0.1", "minilm0", "bbc0", "RUNNING"]
    return root, expected


@pytest.mark.parametrize("width", WIDTHS)
def test_results_fit(sweep, width):
    root, expected = sweep
    sw = load_sweep(root)
    table = compare.run_table(sw.runs)
    text = render(lambda c: views.print_results(c, table, str(root)), width)
    # at 80 columns, four varying overrides leave no room for the error: it is named as not shown
    assert_fits(text, width, [v[:7] if width == 80 else v for v in expected.values()])
    header = header_of(text)
    # long override names shortened, unambiguously: two *.name overrides keep their group
    assert " lr " in header and " warmup_ratio " in header and "model.name" in header and "data.name" in header
    assert "trainer.lr" not in header
    assert "same in all rows" not in text  # nothing constant: data.max_rows is not a varying override
    assert LONG_ERROR not in text
    assert "best by val_macro_f1 (max): job 10 = 0.8100" in text
    if width == 80:
        assert "not shown at 80 columns" in text and "test_acc" not in header and "error" in text
    else:
        assert "…" in text  # the long error is cut to the room left
        assert "test_f1" in header and "error" in header


@pytest.mark.parametrize("width", WIDTHS)
def test_by_seed_and_multi_sweep_fit(sweep, tmp_path, width):
    root, _ = sweep
    other = tmp_path / "2024-02-02_09-30-00"
    grid_sweep(other, lrs=("5e-5",), seeds=(0, 1), extra=("trainer.max_steps=20",))
    sws = load_sweeps([root, other])
    runs = [r for s in sws for r in s.runs]
    table = compare.seed_table(runs)
    text = render(lambda c: views.print_results(c, table), width)
    rows = [[row["sweep"], formats.cell(table, row, "trainer.lr"), formats.cell(table, row, "val_macro_f1")]
            for row in table.rows]
    assert_fits(text, width, rows)
    assert "None" not in text  # the other sweep's runs have no warmup_ratio: empty, not "None"
    best = next(ln for ln in text.splitlines() if ln.startswith("best by"))
    assert "=None" not in best and "trainer.max_steps" not in best


@pytest.mark.parametrize("width", WIDTHS)
def test_status_fit(sweep, width):
    root, expected = sweep
    sw = load_sweep(root)
    statuses = S.sweep_status(sw, S.Answer("local"), "val_macro_f1")
    text = render(lambda c: tables.show(c, views.status_grid(statuses, "val_macro_f1", str(root))), width)
    def hms(seconds: float) -> str:
        s = int(round(seconds))
        return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"

    rows = [[st.run.label, st.state.upper(), *([hms(st.runtime_s)] if st.state == "completed" else []),
             *([f"{st.best:.4f}"] if st.best is not None else [])] for st in statuses]
    assert_fits(text, width, rows)
    assert "same in all rows: epoch=3; empty: job id, scheduler, ETA" in text  # every job got to the end
    assert "0:03:06" in text  # job 0's wall time, 186.5 s
    assert "RuntimeError: CUDA" in text


@pytest.mark.parametrize("width", WIDTHS)
def test_predict_fit(width):
    labels = ["business", "entertainment", "politics", "sport", "tech"]
    texts = ["Shares in the bank fell sharply after the profit warning " * 5, "The striker scored twice."]
    rows = [{"text": t, "label": lab, "probs": {x: (0.9 if x == lab else 0.025) for x in labels}}
            for t, lab in zip(texts, ("entertainment", "sport"), strict=True)]
    text = render(lambda c: tables.show(c, views.predict_grid(rows, labels, "/ckpt/best")), width)
    assert_fits(text, width, [["entertainment", "0.900", "Shares in the bank fell sharply"],
                              ["sport", "0.900", "The striker scored twice."]])
    lines = [ln for ln in text.splitlines() if "0.900" in ln]
    assert len(lines) == 2  # one line per text
    if width == 120:
        assert "0.025" in text  # the other classes when there is room


def test_constant_and_empty_columns_said_once(tmp_path):
    """A CPU sweep with no error: no gpu_hours column (no run was given a GPU), the empty error column is
    named, not shown."""
    grid_sweep(tmp_path / "s", extra=("data.max_rows=400",))
    table = compare.run_table(load_sweep(tmp_path / "s").runs, all_params=True)
    text = render(lambda c: views.print_results(c, table), 80)
    header = header_of(text)
    assert "gpu_h" not in header and "error" not in header and "state" not in header
    assert "max_rows" not in header
    assert text.count("same in all rows: ") == 1
    assert "data.max_rows=400" in text and "state=COMPLETED" in text and "gpu_h" not in text
    assert "empty: error" in " ".join(text.split())  # the note may wrap


def test_short_names():
    assert tables.short_names(["trainer.lr", "seed", "model.name", "data.name", "a.b.c.name"]) == {
        "trainer.lr": "lr", "seed": "seed", "model.name": "model.name", "data.name": "data.name",
        "a.b.c.name": "c.name"}


def test_cli_results_at_80_columns_and_columns_option(sweep):
    root, expected = sweep
    out = CliRunner().invoke(app, ["results", str(root)], env={"COLUMNS": "80"})
    assert out.exit_code == 0, out.output
    assert_fits(out.stdout, 80, [v[:7] for v in expected.values()])
    out = CliRunner().invoke(app, ["results", str(root), "--columns", "job,lr,test_acc,wall_time_s"],
                             env={"COLUMNS": "80"})
    assert out.exit_code == 0, out.output
    assert header_of(out.stdout).split() == ["job", "lr", "test_acc", "time_s"]
    assert_fits(out.stdout, 80, [["0", "1e-4", "0.6900", "186.5"]])
    out = CliRunner().invoke(app, ["results", str(root), "--columns", "job,nope"])
    assert out.exit_code == 2 and "unknown column 'nope'" in out.stderr and "\n" not in out.stderr.strip()


def test_cli_status_at_80_columns(sweep):
    root, expected = sweep
    out = CliRunner().invoke(app, ["status", str(root), "--no-scheduler"], env={"COLUMNS": "80"})
    assert out.exit_code == 1  # one job failed
    assert_fits(out.stdout, 80, [[v[0], v[6]] for v in expected.values()])
    out = CliRunner().invoke(app, ["status", str(root), "--no-scheduler", "-c", "job,state,note"],
                             env={"COLUMNS": "80"})
    assert header_of(out.stdout).split() == ["job", "state", "note"]
    assert_fits(out.stdout, 80, [["12", "FAILED", "RuntimeError: CUDA out of memory. Tried"]])


def test_nothing_finished_yet(tmp_path):
    """Only running jobs: no best mark, no metrics; the empty columns are named by their names."""
    for n in range(2):
        write_run(tmp_path / "s" / str(n), [f"trainer.lr={n + 1}e-4", "seed=0"], state="running")
    table = compare.run_table(load_sweep(tmp_path / "s").runs)
    text = render(lambda c: views.print_results(c, table), 80)
    assert_fits(text, 80, [["0", "1e-4"], ["1", "2e-4"]])
    assert "empty: best, val_f1" in text and "best: none (no completed run reports val_macro_f1)" in text
