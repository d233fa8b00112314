"""What a kind of sweep adds to the standard views, in one place.

A grid sweep needs nothing here. A sweep of another kind (a study: ``hydra/sweeper=study``, with its
journal ``rundir.STUDY_JOURNAL`` in the sweep directory) adds

* **panels**: lines that ``pipeline status`` and ``pipeline watch`` print above the job table (a study:
  finished / pruned / running / failed of N, the best so far and its parameters). Each line fits 80
  columns; :func:`sweep_panels` is what both commands call.
* **report extras**: files written into ``results/`` beside the tables (a study: ``trials.csv``, Optuna's
  plots) and sections of ``report.html`` shown after the per-configuration table, or first, instead of the
  tables (a study: every trial with its state and parameters, Optuna's plots). :func:`report_extras` is
  what :func:`pipeline.results.aggregation.aggregate` calls.

To add a kind: test for its marker file in the two functions below and return its parts; import its
module inside the branch so that ``pipeline status`` stays light.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from pipeline.results.runs import Sweep

if TYPE_CHECKING:
    from pipeline.launch import Answer

#: a panel: plain lines (no markup), printed as they are above the job table
Panel = list[str]


@dataclass
class ReportSection:
    """One ``<section>`` of ``report.html``: a heading and its HTML body (escaped by whoever builds it).
    ``replaces_tables``: shown first, instead of the Runs and Configurations tables and the best line (a
    study's trials table has a row for every run, and its own line for the best)."""

    title: str
    html: str
    replaces_tables: bool = False


@dataclass
class ReportExtra:
    """What a kind of sweep adds to ``results/``: ``files`` (name -> text or PNG bytes) and report sections."""

    files: dict[str, str | bytes] = field(default_factory=dict)
    sections: list[ReportSection] = field(default_factory=list)


def sweep_panels(sweep: Sweep, answer: Answer | None = None) -> list[Panel]:
    """The panels above the job table of ``pipeline status`` and ``pipeline watch`` (none for a grid): a
    study's counts of N, best so far and workers (``answer``: the one scheduler query of this refresh; None:
    the scheduler was not asked)."""
    if not (sweep.meta or {}).get("study"):
        return []
    from pipeline import launch
    from pipeline.launch.sweep_status import study_of
    from pipeline.search.status import panel

    study = study_of(sweep, answer if answer is not None else launch.Answer(sweep.scheduler))
    return [panel(study, sweep.path)] if study is not None else []


def report_extras(sweep: Sweep, metric: str) -> list[ReportExtra]:
    """The extra files and report sections of ``pipeline aggregate`` (none for a grid). A study: ``trials.csv``,
    Optuna's plots and a "Study" section (:mod:`pipeline.results.study_report`; its trials are ranked by the
    study's own objective, whatever ``metric`` ranks the runs by)."""
    from pipeline.results import study_report

    if not study_report.is_study(sweep.path):
        return []
    files, sections = study_report.report_parts(sweep)
    return [ReportExtra(files, [ReportSection(title, body, replaces_tables=True) for title, body in sections])]
