"""LSF as a scheduler backend (:class:`LsfBackend`): submissions through this package's submitit executor
(:mod:`pipeline.launch.submitit_lsf`), one ``bjobs`` per query, an aggregation job that waits with
``bsub -w "ended(...)"``.

LSF's answers (job ids, ``bsub``'s output, ``bjobs`` in both dialects) are read by pure functions in
:mod:`pipeline.launch.submitit_lsf.bjobs`, re-exported here: the backend and the executor share them.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from pipeline.errors import SubmissionError
from pipeline.launch import Answer
from pipeline.launch.backend import Backend, OnStart, PartlySubmitted
from pipeline.launch.submitit_lsf.bjobs import (  # noqa: F401 - re-exported: LSF's parsers, by the backend's name
    BJOBS_FIELDS,
    DIALECT_HINT,
    DIALECTS,
    FINISHED_STATES,
    GENERIC_KEYS,
    STATES,
    UNFINISHED_STATES,
    base_id,
    bjobs_command,
    element_id,
    file_stem,
    interpret,
    parse_bjobs_columns,
    parse_bjobs_json,
    parse_bsub_output,
    parse_not_found,
    query,
    rejected,
    split_job_id,
    what_to_change,
)

# ------------------------------------------------------------------------------------------------ backend

#: launcher keys that are not bsub parameters (the launcher, the aggregation job and packing use them)
LAUNCHER_KEYS = frozenset({
    "submitit_folder", "wait", "dry_run", "max_num_timeout", "python",
    "aggregate", "aggregate_queue", "aggregate_timeout_min", "aggregate_mem_per_slot",
    "runs_per_job", "expected_run_min",
})


def executor_parameters(params: Mapping[str, Any], env: Mapping[str, str]) -> dict[str, Any]:
    """``hydra.launcher.*`` -> ``LsfExecutor.update_parameters`` keywords: generic keys renamed
    (:data:`GENERIC_KEYS`), the launcher's own keys left out, the job environment exported in the script
    (PYTHONPATH first, then the user's ``env``, then the rest of the job environment)."""
    out = {GENERIC_KEYS[k]: v for k, v in params.items() if k in GENERIC_KEYS and v is not None}
    out.update({k: v for k, v in params.items() if k not in GENERIC_KEYS and k not in LAUNCHER_KEYS})
    ours = dict(env)
    first = {"PYTHONPATH": ours.pop("PYTHONPATH")} if "PYTHONPATH" in ours else {}
    out["env"] = {**first, **(params.get("env") or {}), **ours}
    return out


class LsfBackend(Backend):
    """LSF through ``pipeline.launch.submitit_lsf`` (one ``bsub`` array per submission, ``bjobs`` once per
    query, an aggregation job that waits with ``-w "ended(...)"``)."""

    name = "lsf"
    poll_s = 10.0
    cancel_command = ("bkill",)

    def base_id(self, job_id: str) -> str:
        return base_id(str(job_id))

    def file_stem(self, job_id: str) -> str:
        try:
            return file_stem(str(job_id))
        except ValueError:
            return str(job_id)

    def query(self, job_ids: Iterable[str], manifest: Mapping[str, Any]) -> Answer:
        ids = list(job_ids)
        if not ids:  # bjobs without ids would list every job of the user
            return Answer(self.name)
        return query(ids, str(manifest.get("dialect") or "lsf10"), self.runner)

    def peek_command(self, job_id: str, follow: bool = False) -> list[str] | None:
        return ["bpeek", *(["-f"] if follow else []), str(job_id)]

    @classmethod
    def job_here(cls, env: Mapping[str, str]) -> str | None:
        """``LSB_JOBID`` and ``LSB_JOBINDEX`` (0 outside an array): ``123[4]`` or ``123``."""
        if "LSB_JOBID" not in env:
            return None
        index = env.get("LSB_JOBINDEX", "0")
        return element_id(env["LSB_JOBID"], int(index) if index.isdigit() else None)

    def make_executor(self) -> Any:
        """An LsfExecutor with every parameter checked (unknown keys, limits, memory, quoting)."""
        from pipeline.launch.submitit_lsf.lsf import LsfExecutor

        p = self.params
        executor = LsfExecutor(Path(str(p["submitit_folder"])).absolute(),
                               max_num_timeout=int(p.get("max_num_timeout", 3)),
                               python=p.get("python"), dry_run=bool(p.get("dry_run", False)))
        executor.update_parameters(**executor_parameters(p, self.env))
        return executor

    def check_can_submit(self, executor: Any) -> None:
        """bsub on PATH (unless a dry run), and every queue this launch names listed by ``bqueues``."""
        from pipeline.launch.submitit_lsf import queues
        from pipeline.launch.submitit_lsf.lsf import BsubNotFoundError

        try:
            executor.check_can_submit()
        except BsubNotFoundError as e:
            raise SubmissionError(str(e)) from None
        queues.check_queues(self.params, not self.waits() and bool(self.params.get("aggregate", True)))

    def notes(self, n_jobs: int, runs_per_job: int = 1) -> list[str]:
        """How many of the jobs the queue's GPUs run at once, when that is fewer than the array asks for."""
        from pipeline.launch.submitit_lsf import queues

        note = queues.parallelism_note(self.params, n_jobs, runs_per_job)
        return [note] if note else []

    def submit(self, executor: Any, calls: Sequence[Callable[[], Any]], on_start: OnStart | None = None,
               on_wait: Callable[[], None] | None = None) -> list[Any]:
        from submitit.core.utils import FailedSubmissionError

        from pipeline.launch.submitit_lsf.lsf import LsfPartlySubmittedError

        try:
            jobs = executor.submit_array(list(calls))
        except LsfPartlySubmittedError as e:  # a later array of a big sweep: the earlier ones run
            raise PartlySubmitted(str(e)) from None
        except FailedSubmissionError as e:  # bsub answered no
            said = str(e)
            raise SubmissionError(f"{said}; nothing was submitted: {what_to_change(said)}") from None
        for i, job in enumerate(jobs):
            if on_start is not None:
                on_start(i, job)
        return jobs

    def manifest_fields(self, executor: Any) -> dict[str, Any]:
        return {"dialect": executor.parameters.get("dialect", "lsf10")}

    def aggregate_script(self, executor: Any, sweep_dir: Path, depends_on: Sequence[str]) -> str:
        from pipeline.launch.submitit_lsf.lsf import make_aggregate_bsub_string

        p, ex = self.params, executor.parameters
        command = f"{executor.python} -m pipeline.cli aggregate {shlex.quote(str(sweep_dir))}"
        return make_aggregate_bsub_string(
            command, sweep_dir, depends_on=depends_on, job_name=f"{ex.get('job_name', 'sweep')}_aggregate",
            queue=p.get("aggregate_queue") or ex.get("queue"),  # null: the sweep's own queue
            project=ex.get("project"), dialect=ex.get("dialect", "lsf10"),
            timeout_min=int(p.get("aggregate_timeout_min", 30)), mem_per_slot=p.get("aggregate_mem_per_slot"),
            mem_unit=ex.get("mem_unit", "MB"), setup=ex.get("setup"),
            env={k: v for k, v in (ex.get("env") or {}).items() if k != "PIPELINE_GPUS"})  # a CPU job

    def submit_aggregate(self, executor: Any, sweep_dir: Any, depends_on: Sequence[str],
                         dry_run: bool = False, check_only: bool = False) -> str | None:
        """``bsub -w "ended(<arrays>)"`` running ``pipeline aggregate``; ``check_only``: build the script (its
        settings fail here) and submit nothing. A refusal is logged, not raised: the sweep is submitted."""
        import logging

        from pipeline import atomic, rundir
        from pipeline.launch.submitit_lsf.lsf import run_bsub

        if not self.params.get("aggregate", True):
            return None
        text = self.aggregate_script(executor, Path(sweep_dir), list(depends_on) or ["0"])
        if check_only:
            return None
        script = Path(sweep_dir) / rundir.AGGREGATE_SCRIPT
        atomic.write_text(script, text)
        if dry_run:
            return None
        try:
            return run_bsub(script)
        except Exception as e:  # noqa: BLE001 - the sweep itself is submitted: say so, do not fail it
            logging.getLogger(__name__).error(
                f"the aggregation job was not submitted ({e}); once the sweep ends run: "
                f"python -m pipeline.cli aggregate {shlex.quote(str(sweep_dir))}")
            return None
