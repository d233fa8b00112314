"""What a kind of sweep adds to the standard views, in one place.

A grid sweep needs nothing here. A sweep of another kind (a study: ``hydra/sweeper=study``, with its
journal ``rundir.STUDY_JOURNAL`` in the sweep directory) adds

* **panels**: lines that ``pipeline status`` and ``pipeline watch`` print above the job table (a study:
  finished / pruned / running / failed of N, the best so far and its parameters). Each line fits 80
  columns; :func:`sweep_panels` is what both commands call.
* **report extras**: files written into ``results/`` beside the tables (a study: ``trials.csv``, Optuna's
  plots) and sections of ``report.html`` shown after the per-configuration table (a study: every trial
  with its state and parameters, the optimisation history). :func:`report_extras` is what
  :func:`pipeline.results.aggregation.aggregate` calls.

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
    """One ``<section>`` of ``report.html``: a heading and its HTML body (escaped by whoever builds it)."""

    title: str
    html: str


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
    """The extra files and report sections of ``pipeline aggregate`` (none for a grid)."""
    return []
