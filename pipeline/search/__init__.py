"""Searches (``hydra/sweeper=study``): an Optuna study in the sweep folder, run by the workers of one job array.

``space`` maps Hydra's sweep grammar to Optuna distributions; ``study`` opens the study (journal storage on the
shared file system); ``worker`` is the job-side loop (ask, train, report, tell) and its decisions;
``in_process`` trains a study's trials in one process (benchmarks, tests). See docs/search.md.
"""
