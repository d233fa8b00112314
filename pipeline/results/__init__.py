"""Results: run directories -> compare tables, their formats, the results folder, the terminal views.

One idea per module, imported in one direction (reading <- tables <- formats <- aggregation):

* :mod:`~pipeline.results.runs`: read run directories and sweeps (:class:`Run`, :class:`Sweep`,
  :func:`load_sweep`);
* :mod:`~pipeline.results.metrics`: metric names, which direction is better, which overrides vary;
* :mod:`~pipeline.results.compare`: the compare tables (:func:`run_table`, :func:`seed_table`) and
  :func:`best_run`;
* :mod:`~pipeline.results.formats`: a table's cells and footer, and the ``md``/``csv``/``json``/``latex``
  formats;
* :mod:`~pipeline.results.aggregation`: ``pipeline aggregate`` (the files of ``results/``), with
  :mod:`~pipeline.results.plots` and :mod:`~pipeline.results.report` (``report.html``);
* :mod:`~pipeline.results.extras`: what a kind of sweep (a study) adds to status, watch and the report;
* :mod:`~pipeline.results.logs`: where a job's log is, and its tail;
* :mod:`~pipeline.results.tables` (the one terminal-table renderer), :mod:`~pipeline.results.views`
  (what each command's table shows), :mod:`~pipeline.results.watch` (``pipeline watch``);
* :mod:`~pipeline.results.baseline`, :mod:`~pipeline.results.class_metrics`.

The names other stages use are re-exported here (``from pipeline.results import load_sweep``). Nothing
heavy is imported: no pandas, numpy, matplotlib or yaml until a function needs it.
"""

from pipeline.results.aggregation import aggregate
from pipeline.results.compare import Table, best_run, run_table, seed_table
from pipeline.results.formats import FORMATTERS
from pipeline.results.metrics import UnknownMetricError, check_metric, curve_key, default_mode, varying_params
from pipeline.results.runs import (
    NoJobsError,
    NotASweepError,
    Run,
    Sweep,
    load_sweep,
    load_sweeps,
    parse_overrides,
    read_json,
    read_jsonl,
)
from pipeline.rundir import (
    BAD_STATES,
    COMPLETED,
    CORRUPT,
    FAILED,
    MISSING,
    PENDING,
    PRUNED,
    REQUEUED,
    RUNNING,
    STATES,
)

__all__ = [
    "BAD_STATES", "COMPLETED", "CORRUPT", "FAILED", "FORMATTERS", "MISSING", "PENDING", "PRUNED", "REQUEUED",
    "RUNNING", "STATES", "NoJobsError", "NotASweepError", "Run", "Sweep", "Table", "UnknownMetricError",
    "aggregate", "best_run", "check_metric", "curve_key", "default_mode", "load_sweep", "load_sweeps",
    "parse_overrides", "read_json", "read_jsonl", "run_table", "seed_table", "varying_params",
]
