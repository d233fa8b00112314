"""Searches (``hydra/sweeper=study``): an Optuna study in the sweep folder, run by the workers of one job array.

``space`` maps Hydra's sweep grammar to Optuna distributions; ``study`` opens the study (journal storage on the
shared file system); ``worker`` is the job-side loop (ask, train, report, tell) and its decisions; ``job`` is
what a worker job runs (each trial through the launcher, as a grid point); ``submit`` creates the study and
submits its workers through the launch flow; ``status`` is the study as ``pipeline status``/``watch``/``rerun``
see it (the workers' states, the panel); ``in_process`` trains a study's trials in one process (benchmarks,
tests). See docs/search.md.
"""
