"""What ``pipeline results`` and ``report.html`` show of a study (``hydra/sweeper=study``): every trial and
Optuna's plots of the search.

A study's sweep folder holds its Optuna journal (``study.journal``), its settings and space (``study.json``)
and one ordinary run directory per trial, ``<sweep>/<trial number>/``. The **trials table**
(:func:`trial_table`) has one row per trial of the journal: its state as the study counts it (completed,
pruned, failed, running), its searched parameters (the values Optuna gave it), and the metrics of its run
directory (the objective ``val_<monitor>`` first, and the step a pruned run stopped at); ranked as the
compare table ranks runs (completed by the objective, best first; then pruned; then the rest). Its
headline (:func:`study_line`) is the study in one line: finished of ``trials``, pruned, running and failed
counts, the best trial with its value and parameters.

The **plots** are Optuna's matplotlib visualisations, titled and labelled for this study: the optimisation
history (each completed trial's objective and the best so far), the parameter importances (fANOVA, seeded,
over the completed trials: only when at least two have completed and a parameter varies among them) and
the intermediate values (the objective at each evaluation: the curves the pruner judged). Optuna draws
them with pyplot and its ggplot style: :func:`optuna_plots` keeps that, and Optuna's ExperimentalWarning,
inside, and closes the figures it opened.

Everything is read from the journal and the run directories, never from a scheduler, so the aggregation
job can write it on a CPU node, while trials still run, and before any trial has finished.
"""

from __future__ import annotations

import contextlib
import html
import sys
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from pipeline import rundir as RD
from pipeline.errors import PipelineError, first_line
from pipeline.results.compare import Table, baseline_rows, display_metrics, make_table, rank_rows
from pipeline.results.formats import format_number, param_text, to_csv
from pipeline.results.metrics import check_metric, default_mode, metrics_present, order_metrics, varying_params
from pipeline.results.runs import Run, Sweep
from pipeline.results.tables import short_names
from pipeline.rundir import COMPLETED, FAILED, PENDING, PRUNED, RUNNING
from pipeline.search import study as S

#: Optuna's trial states (``TrialState.<name>``) as the tables name them
STATES = {S.COMPLETE: COMPLETED, S.PRUNED: PRUNED, S.FAIL: FAILED, S.RUNNING: RUNNING, S.WAITING: PENDING}
#: the column that names a trial
TRIAL = "trial"
#: the metric a pruned run stopped at (``metrics.json`` ``pruned_at_step``)
PRUNED_AT = "pruned_at_step"
#: trials named in the intermediate values' legend; more are drawn without one
MAX_LEGEND = 20
FIGSIZE = (7.5, 4.5)


def is_study(sweep_dir: str | Path) -> bool:
    """Whether the sweep folder holds a study (its ``study.json``); no Optuna needed to tell."""
    return (Path(sweep_dir) / RD.STUDY_JSON).is_file()


@dataclass
class StudyView:
    """A study as the views read it: its settings, the searched keys, the trials, and Optuna's study."""

    path: Path
    settings: S.StudySettings
    keys: list[str]  # the searched parameters, as study.json lists them
    trials: list[S.TrialView]  # by number
    study: Any  # optuna.Study (the plots)

    @property
    def objective(self) -> str:
        return f"val_{self.settings.monitor}"

    @property
    def journal(self) -> Path:
        return self.path / RD.STUDY_JOURNAL


def read_study(sweep_dir: str | Path) -> StudyView:
    """The study of a sweep folder (imports Optuna); a PipelineError (one line) when it cannot be read."""
    try:
        study = S.SweepStudy.open(Path(sweep_dir))
    except OSError as e:  # Optuna opens the journal for appending: a read-only copy cannot be opened
        raise PipelineError(f"cannot open {Path(sweep_dir) / RD.STUDY_JOURNAL}: {first_line(e)}") from None
    return StudyView(Path(sweep_dir), study.settings, list(study.space.distributions), study.trials(), study.study)


# ------------------------------------------------------------------------------------------ the table


def _note(state: str, run: Run | None) -> str | None:
    """The row's error column: the run's error, or a run that ended but is not yet told to the study."""
    if run is None:
        return None
    if state == RUNNING and run.state in (COMPLETED, PRUNED, FAILED):
        return f"its run ended {run.state}; the study is told when its worker runs again"
    return run.error


def _param(trial: S.TrialView, run: Run | None, key: str) -> Any:
    """A parameter's value: Optuna's for a searched key, the run's override text for a fixed one."""
    if key in trial.params:
        return trial.params[key]
    return run.params.get(key) if run is not None else None


def trial_rows(view: StudyView, runs: list[Run], params: list[str], present: list[str], label: str
               ) -> list[dict[str, Any]]:
    """One row per trial of the journal (unranked): the study's state and parameters, its run's metrics."""
    by_number = {r.job_num: r for r in runs if r.job_num is not None}
    rows = []
    for t in view.trials:
        run = by_number.get(t.number)
        state = STATES.get(t.state, t.state.lower())
        row: dict[str, Any] = {
            "sweep": label, TRIAL: t.number, "job_id": run.job_id if run else None, "state": state,
            "error": _note(state, run), "run_dir": str(run.run_dir) if run and run.run_dir else None,
            "gpu_warning": run.gpu.get("warning") if run else None, "_order": t.number, "_state": state,
        }
        row.update({p: _param(t, run, p) for p in params})
        row.update({m: run.metrics.get(m) if run else None for m in present})
        if row.get(view.objective) is None and t.state == S.COMPLETE and t.value is not None:
            row[view.objective] = float(t.value)  # the journal's value, where the run directory has none
        rows.append(row)
    return rows


def trial_table(sweep: Sweep, view: StudyView, metric: str | None = None, mode: str | None = None,
                all_params: bool = False, columns: list[str] | None = None,
                baselines: list[dict[str, Any]] | None = None) -> Table:
    """Every trial of the study, ranked by ``metric`` (default: the study's objective), best first.

    Parameter columns: the searched keys (``all_params``: every override of the runs too). Metrics: the
    ranking metric, then the step a pruned trial stopped at, then the usual ones (``columns``: those)."""
    metric = metric or view.objective
    check_metric(metric, sweep.runs)
    mode = mode or default_mode(metric)
    params = view.keys + ([k for k in varying_params(sweep.runs, True) if k not in view.keys] if all_params else [])
    valued = any(t.state == S.COMPLETE and t.value is not None for t in view.trials)
    present = order_metrics(set(metrics_present(sweep.runs)) | ({view.objective} if valued else set()))
    rows = trial_rows(view, sweep.runs, params, present, sweep.name)
    counts: dict[str, int] = {}
    for row in rows:
        counts[row["state"]] = counts.get(row["state"], 0) + 1
    rows += baseline_rows(baselines, params, present, len(rows), TRIAL)
    best = rank_rows(rows, metric, mode)
    display = display_metrics(metric, present, columns)
    if not columns and PRUNED_AT in present:
        display.insert(display.index(metric) + 1, PRUNED_AT)
    table = make_table(sweep.runs, rows, metric, mode, False, params, present, columns, best)
    return replace(table, display=display, counts=counts, id_column=TRIAL, headline=study_line(view),
                   extra={"study": study_json(view)})


def _best(view: StudyView) -> S.TrialView | None:
    best = S.summarize(view.trials, view.settings)["best"]
    return None if best is None else next(t for t in view.trials if t.number == best["number"])


def study_line(view: StudyView) -> str:
    """``study: 6 finished of 8 trials (2 pruned), 1 running, 1 failed; best trial 3: val_macro_f1 0.8123
    at lr=3.162e-05 batch_size=16``."""
    states = [t.state for t in view.trials]
    finished = sum(states.count(s) for s in S.FINISHED)
    parts = [f"study: {finished} finished of {view.settings.trials} trials ({states.count(S.PRUNED)} pruned)"]
    parts += [f"{states.count(s)} {STATES[s]}" for s in (S.RUNNING, S.FAIL) if s in states]
    best = _best(view)
    if best is None:
        return ", ".join(parts) + "; no completed trial yet"
    short = short_names(view.keys)
    at = " ".join(f"{short[k]}={param_text(best.params[k])}" for k in view.keys if k in best.params)
    value = format_number(view.objective, best.value)
    return ", ".join(parts) + f"; best trial {best.number}: {view.objective} {value}" + (f" at {at}" if at else "")


def study_json(view: StudyView) -> dict[str, Any]:
    """The study under ``--format json``'s ``study`` key: settings, counts, the best trial."""
    summary = S.summarize(view.trials, view.settings)
    s = view.settings
    return {"journal": str(view.journal), "objective": view.objective, "direction": s.direction,
            "trials": s.trials, "finished": summary["finished"],
            "counts": {STATES[k]: v for k, v in summary["counts"].items()}, "sampler": s.sampler,
            "pruner": s.pruner, "seed": s.seed, "best": None if summary["best"] is None else
            {TRIAL: summary["best"]["number"], "value": summary["best"]["value"], "params": summary["best"]["params"]}}


# ------------------------------------------------------------------------------------------ the plots


@contextlib.contextmanager
def optuna_plots() -> Iterator[None]:
    """Where Optuna's matplotlib plots are drawn: on the Agg canvas (no display: pyplot, when this is its first
    use, starts on Agg), with Optuna's ``ggplot`` style and its ExperimentalWarning kept inside, and every
    figure opened inside closed on the way out (render them inside)."""
    import warnings

    import matplotlib

    if "matplotlib.pyplot" not in sys.modules:
        matplotlib.use("agg")
    import matplotlib.pyplot as plt
    from optuna.exceptions import ExperimentalWarning

    before = set(plt.get_fignums())
    try:
        with warnings.catch_warnings(), matplotlib.rc_context():
            warnings.simplefilter("ignore", ExperimentalWarning)
            yield
    finally:
        for num in set(plt.get_fignums()) - before:
            plt.close(num)


def _finish(ax: Any, title: str, xlabel: str, ylabel: str, integer_x: bool = True) -> Any:
    """Our title, axis labels, size and layout on one of Optuna's axes; its figure."""
    from matplotlib.ticker import MaxNLocator

    fig = ax.figure
    fig.set_size_inches(*FIGSIZE)
    fig.set_layout_engine("constrained")  # Optuna's tight layout cuts long tick labels; this keeps them
    for loc in ("center", "right"):
        ax.set_title("", loc=loc)  # Optuna's own title
    ax.set_title(title, loc="left", fontsize=11)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if integer_x:  # trial numbers, evaluations: whole numbers, and a range of at least two around one point
        lo, hi = ax.get_xlim()
        if hi - lo < 2:
            ax.set_xlim((lo + hi) / 2 - 1, (lo + hi) / 2 + 1)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    return fig


def _placeholder(title: str, xlabel: str, ylabel: str, why: str) -> Any:
    """A plot that cannot be drawn yet: its title and axes, and why in the middle."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=FIGSIZE, layout="constrained")
    ax.text(0.5, 0.5, why, ha="center", va="center", transform=ax.transAxes, fontsize=12, wrap=True)
    ax.set_xticks([])
    ax.set_yticks([])
    return _finish(ax, title, xlabel, ylabel, integer_x=False)


def _target(view: StudyView) -> str:
    return f"val {view.settings.monitor}"


def history_figure(view: StudyView, name: str) -> tuple[Any, str | None]:
    """Optuna's optimisation history: each completed trial's objective and the best so far; (figure, why it
    shows no data)."""
    from optuna.visualization.matplotlib import plot_optimization_history

    title = (f"{name}: optimisation history\n{_target(view)} of each completed trial and the best so far "
             f"({view.settings.direction})")
    labels = ("trial number", _target(view))
    if not any(t.state == S.COMPLETE for t in view.trials):
        why = "no completed trial yet"
        return _placeholder(title, *labels, why), why
    ax = plot_optimization_history(view.study, target_name=_target(view))
    handles, names = ax.get_legend_handles_labels()
    names = ["best so far" if n == "Best Value" else "completed trial" if n == _target(view) else n for n in names]
    ax.legend(handles, names, loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize="small")
    return _finish(ax, title, *labels), None


def importance_params(view: StudyView) -> tuple[list[str], str | None]:
    """The parameters whose importance can be measured (those that vary among the completed trials), or
    why none can: fewer than 2 completed trials, no parameter that varies, one value for all."""
    done = [t for t in view.trials if t.state == S.COMPLETE and t.value is not None]
    if len(done) < 2:
        return [], f"parameter importances need 2 completed trials; the study has {len(done)}"
    varying = [k for k in view.keys if len({repr(t.params.get(k)) for t in done}) > 1]
    if not varying:
        return [], "no parameter varies among the completed trials, so none can explain a difference"
    if len({t.value for t in done}) < 2:
        return [], f"every completed trial has the same {_target(view)}: there is no difference to explain"
    return varying, None


def importance_figure(view: StudyView, name: str) -> tuple[Any, str | None]:
    """Optuna's parameter importances (fANOVA, seed 0) for the objective over the completed trials;
    (figure, why it could not be drawn)."""
    from optuna.importance import FanovaImportanceEvaluator
    from optuna.visualization.matplotlib import plot_param_importances

    done = sum(t.state == S.COMPLETE for t in view.trials)
    title = f"{name}: parameter importances\nfor {_target(view)}, by fANOVA over {done} completed trials"
    labels = ("importance (share of the variation explained; sums to 1)", "parameter")
    params, why = importance_params(view)
    if why is None:
        try:
            ax = plot_param_importances(view.study, evaluator=FanovaImportanceEvaluator(seed=0), params=params,
                                        target_name=_target(view))
        except (RuntimeError, ValueError) as e:  # fANOVA: "zero total variance in all trees", ...
            why = f"parameter importances could not be computed: {first_line(e)}"
        else:
            if ax.get_legend() is not None:
                ax.get_legend().remove()  # one objective: its name is in the title
            return _finish(ax, title, *labels, integer_x=False), None
    return _placeholder(title, *labels, why), why


def intermediate_figure(view: StudyView, name: str) -> tuple[Any, str | None]:
    """Optuna's intermediate values: the objective at each evaluation of each trial (pruned ones dashed);
    (figure, why it shows no data)."""
    from optuna.visualization.matplotlib import plot_intermediate_values

    title = f"{name}: intermediate values\n{_target(view)} at each evaluation, one line per trial (dashed: pruned)"
    labels = ("evaluation (Optuna's step)", _target(view))
    if not any(t.intermediate_values for t in view.study.get_trials(deepcopy=False)):
        why = "no trial has reported an evaluation yet"
        return _placeholder(title, *labels, why), why
    ax = plot_intermediate_values(view.study)
    states = {t.number: STATES.get(t.state, "") for t in view.trials}
    for line in ax.get_lines():
        number = int(line.get_label().removeprefix("Trial"))
        line.set_label(f"trial {number}" + (f" ({states[number]})" if states.get(number) != COMPLETED else ""))
        if states.get(number) == PRUNED:
            line.set_linestyle("--")
    if ax.get_legend() is not None:
        ax.get_legend().remove()
    if len(ax.get_lines()) <= MAX_LEGEND:
        ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize="small")
    return _finish(ax, title, *labels), None


def study_figures(view: StudyView, name: str) -> tuple[dict[str, Any], dict[str, str]]:
    """``{file name: Figure}`` of the study's three plots, and ``{file name: why it shows no data}`` (call
    inside :func:`optuna_plots`)."""
    figures, why = {}, {}
    for file, draw in ((RD.STUDY_HISTORY_PNG, history_figure), (RD.STUDY_IMPORTANCE_PNG, importance_figure),
                       (RD.STUDY_INTERMEDIATE_PNG, intermediate_figure)):
        figures[file], reason = draw(view, name)
        if reason:
            why[file] = reason
    return figures, why


# ------------------------------------------------------------------------------------------ the report

#: what each plot is called in the report, and its caption ({target}: ``val macro_f1``)
PLOTS = {
    RD.STUDY_HISTORY_PNG: ("Optimisation history", "{target} of each completed trial, by trial number, and the "
                           "best so far"),
    RD.STUDY_IMPORTANCE_PNG: ("Parameter importances", "how much of the variation of {target} over the "
                              "completed trials each parameter explains (fANOVA)"),
    RD.STUDY_INTERMEDIATE_PNG: ("Intermediate values", "{target} at each evaluation, one line per trial: the "
                                "curves the pruner judged (dashed: pruned)"),
}


def section_html(view: StudyView, table: Table, pngs: dict[str, bytes], why: dict[str, str]) -> str:
    """The report's "Study" section: the study's line and settings, the trials table, the plots (a plot
    that cannot be drawn yet is a line saying why)."""
    from pipeline.results.report import figure_html, table_html

    e, s = html.escape, view.settings
    target = _target(view)
    figures = "".join(figure_html(pngs[f], f"{title}: {cap.format(target=target)}")
                      for f, (title, cap) in PLOTS.items() if f not in why and f in pngs)
    notes = "".join(f'<p class="note">{e(title)}: {e(why[f])}.</p>' for f, (title, _) in PLOTS.items() if f in why)
    return (f'<p class="note"><b>{e(table.headline or "")}</b></p>'
            f'<p class="note">Sampler {e(s.sampler)} (seed {s.seed}), pruner {e(s.pruner)}; objective '
            f'{e(view.objective)} ({e(s.direction)}d). One row per trial: completed trials ranked by the objective '
            '(★ the best), then pruned ones by their best value before the stop, then running and failed ones. '
            'Click a column header to sort.</p>'
            f'<div class="scroll">{table_html(table, "trials")}</div>'
            f'<div class="plots">{figures}</div>{notes}'
            f'<p class="note">The study live, while it runs: <code>optuna-dashboard {e(str(view.journal))}</code> '
            '(docs/results.md, "Results of a study").</p>')


def report_parts(sweep: Sweep) -> tuple[dict[str, str | bytes], list[tuple[str, str]]]:
    """What a study adds to ``results/``: ``trials.csv`` and the three plots (``{file name: content}``), and
    the report's "Study" section as ``(title, html)``. A study that cannot be read is a section saying so."""
    from pipeline.results.plots import render_png

    try:
        view = read_study(sweep.path)
    except PipelineError as e:
        return {}, [("Study", f'<p class="note">The study could not be read: {html.escape(first_line(e))}</p>')]
    table = trial_table(sweep, view)
    with optuna_plots():
        figures, why = study_figures(view, sweep.name)
        pngs = {name: render_png(fig) for name, fig in figures.items()}
    return {RD.TRIALS_CSV: to_csv(table), **pngs}, [("Study", section_html(view, table, pngs, why))]
