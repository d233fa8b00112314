"""Submitting a study: one array of ``workers`` jobs through the launcher's own steps, the same flow as a grid.

    checked backend (every setting, the aggregation script) -> sweep folder + payload pickle -> the study
    (study.json, study.journal) -> one WorkerJob per slot -> submit_calls (one array; sweep.json) ->
    the aggregation job -> the report -> return at once (LSF, Slurm), or wait (local processes)

``sweep.json`` of a study has no ``jobs`` in advance (the workers pick their trials); it records the study::

    "study": {"name": "<study name>", "journal": "study.journal", "settings": {<StudySettings>},
              "workers": [{"slot": 0, "job_id": "1234[1]", "stdout": "<log>", "stderr": "<log>",
                           "previous_job_ids": []}, ...]}

A rerun of a failed worker (``pipeline rerun SWEEP --failed``) replaces its slot's ``job_id`` and logs and
appends the old id to ``previous_job_ids``. Each trial's run directory names the job that ran it
(``run_info.json``).
"""

from __future__ import annotations

import logging
from dataclasses import asdict
from pathlib import Path
from typing import Any

from pipeline import rundir
from pipeline.search.space import Space
from pipeline.search.study import StudySettings, SweepStudy

log = logging.getLogger(__name__)


def worker_entry(slot: int, job: Any, be: Any, previous: list[str] | None = None) -> dict[str, Any]:
    """``sweep.json``'s record of worker ``slot`` run by the submitit job ``job``."""
    stdout, stderr = be.log_paths(job)
    return {"slot": int(slot), "job_id": str(job.job_id), "stdout": stdout, "stderr": stderr,
            "previous_job_ids": list(previous or [])}


def study_fields(study: SweepStudy) -> dict[str, Any]:
    """``sweep.json``'s ``study`` before its workers are submitted."""
    return {"name": study.name, "journal": rundir.STUDY_JOURNAL, "settings": asdict(study.settings), "workers": []}


def submit_study(launcher: Any, settings: StudySettings, space: Space) -> tuple[list[Any], bool]:
    """Create the study in the sweep folder and submit its workers as one array (plus the aggregation job);
    the submitit jobs, and whether this launch waits for them (local processes: they have ended already; a
    scheduler with ``hydra.launcher.wait=true``: ``job.results()`` waits). Raises a one-line PipelineError for
    a setting the backend refuses, before anything is written."""
    sweep_dir = Path(str(launcher.config.hydra.sweep.dir)).absolute()
    be, executor = launcher.checked_backend(settings.workers, sweep_dir)
    jobs, manifest = _submit_workers(launcher, be, executor, sweep_dir, settings, space)
    launcher.aggregate_after(be, executor, sweep_dir, manifest)
    launcher.report(be, manifest["arrays"], executor, manifest.get("aggregate_job_id"),
                    bool(launcher.params.get("dry_run", False)), be.waits())
    for line in be.notes(len(jobs)):
        print(line, flush=True)
    return jobs, be.waits()


def _submit_workers(launcher: Any, be: Any, executor: Any, sweep_dir: Path, settings: StudySettings,
                    space: Space) -> tuple[list[Any], dict[str, Any]]:
    """The sweep folder, the study, one WorkerJob per slot submitted as one array and recorded in
    ``sweep.json``; what this made is removed again if the scheduler refuses the array."""
    from pipeline.launch.launcher import submit_calls, write_manifest
    from pipeline.search.job import WorkerJob

    with launcher.sweep_folder(be, executor, sweep_dir) as (pickled, undo):
        for path in study_files(sweep_dir):
            if not path.exists():
                undo.made(path)
        study = SweepStudy.create(sweep_dir, settings, space)
        manifest = launcher.new_manifest(be, executor, [], study=study_fields(study))
        log.info(f"Study {study.name}: {settings.trials} trials, {settings.workers} workers, {settings.sampler} "
                 f"sampler, {settings.pruner} pruner, {settings.direction} val_{settings.monitor}; "
                 f"journal {sweep_dir / rundir.STUDY_JOURNAL}")
        view = launcher.progress_view(sweep_dir, be, manifest, 0, settings.workers)

        def started(slot: int, job: Any) -> None:
            manifest["study"]["workers"].append(worker_entry(slot, job, be))
            if be.blocking:
                write_manifest(sweep_dir, manifest)

        calls = [WorkerJob(pickled, sweep_dir, slot) for slot in range(settings.workers)]
        jobs = submit_calls(be, executor, sweep_dir, calls, [[] for _ in calls], manifest, on_start=started,
                            on_wait=view.refresh if view is not None else None)
    if view is not None:
        view.refresh(force=True)
        view.close()
    return jobs, manifest


def study_files(sweep_dir: Path) -> list[Path]:
    """What creating a study writes in the sweep folder."""
    return [sweep_dir / rundir.STUDY_JSON, sweep_dir / rundir.STUDY_JOURNAL, sweep_dir / rundir.STUDY_WORKERS_DIR]
