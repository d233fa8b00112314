"""submitit backend for IBM Spectrum LSF (and the OpenLava lineage), shaped like ``submitit/slurm/slurm.py``.

- ``LsfInfoWatcher``: one ``bjobs`` call per poll for every tracked job, back-off on failures; a job that
  ``bjobs`` no longer lists is decided by its submitit result pickle; it never waits forever.
- ``LsfJob``: a submitit Job; ids ``"123"`` (plain) or ``"123[4]"`` (array element); ``bkill`` cancels.
- ``LsfJobEnvironment``: inside a job (``LSB_JOBID``, ``LSB_JOBINDEX``); USR2 -> checkpoint -> ``brequeue``
  (or resubmission where brequeue is refused), once, whatever other signals arrive meanwhile.
- ``LsfExecutor``: a ``PicklingExecutor``; a batch of N jobs is one ``bsub`` array ``-J "name[1-N]%P"``
  (several arrays above ``max_array_size``), each script read by ``bsub`` on stdin and kept next to the logs.
- the job script itself comes from ``pipeline.launch.submitit_lsf.script.make_bsub_string``, a pure function
  whose signature is the list of valid parameters.

Files of job ``123[4]`` in the submitit folder use the stem ``123_4`` (what LSF writes for ``%J_%I``):
``123_4_submitted.pkl``, ``123_4_0_result.pkl``, ``123_4_0_log.out``/``.err``; the array's script is
``123_submission.sh`` and its parameters ``123_bsub.json`` (used to resubmit a job LSF will not requeue).
"""

from __future__ import annotations

import json
import logging
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
import types
import typing as tp
import uuid
from pathlib import Path

from submitit.core import core, job_environment, logger, utils

from pipeline import rundir
from pipeline.launch import Answer
from pipeline.launch.state import decide
from pipeline.launch.submitit_lsf.bjobs import (
    FINISHED_STATES,
    GENERIC_KEYS,
    bjobs_command,
    element_id,
    file_stem,
    interpret,
    parse_bsub_output,
    query,
    split_job_id,
)
from pipeline.launch.submitit_lsf.script import LsfConfigError as LsfConfigError
from pipeline.launch.submitit_lsf.script import default_parameters as _get_default_parameters
from pipeline.launch.submitit_lsf.script import make_aggregate_bsub_string as make_aggregate_bsub_string
from pipeline.launch.submitit_lsf.script import make_bsub_string

_log = logging.getLogger(__name__)
BSUB_NOT_FOUND = "bsub not found on PATH: run this on an LSF login node, or use cluster=local"

# ------------------------------------------------------------------------------------------------ errors


class BsubNotFoundError(utils.FailedSubmissionError):
    def __init__(self) -> None:
        super().__init__(BSUB_NOT_FOUND)


class LsfSubmissionError(utils.FailedSubmissionError):
    """bsub refused the job (its exit code or its answer says so); the message names the script."""


class LsfPartlySubmittedError(LsfSubmissionError):
    """bsub refused a later array of a big batch; the arrays before it were submitted (the message names them)."""


class LsfStatusError(utils.UncompletedJobError):
    """bjobs kept failing: the state of the jobs is unknown (they may still be running)."""


# ------------------------------------------------------------------------------------------------ paths


class LsfJobPaths(utils.JobPaths):
    """submitit's JobPaths with LSF ids: job ``123[4]`` gets the file stem ``123_4`` (LSF's ``%J_%I``)."""

    def __init__(self, folder: str | Path, job_id: str | None = None, task_id: int | None = None) -> None:
        self.lsf_job_id = job_id
        super().__init__(folder, job_id=None if job_id is None else file_stem(job_id), task_id=task_id)

    @property
    def resubmitted(self) -> Path:
        """Ids of the jobs that took over this one where LSF refused to requeue it, one a line."""
        return self._format_id(self.folder / "%j_resubmitted.txt")


# ------------------------------------------------------------------------------------------------ watcher


class LsfInfoWatcher(core.InfoWatcher):
    """Polls ``bjobs`` once for all registered jobs (at 0, 2, 4, 8, ... s after a submission, then every
    ``delay_s``), backs off exponentially while ``bjobs`` fails and gives up with ``LsfStatusError`` after
    ``max_failures`` failures in a row. A job absent from the answer is finished if its result pickle
    exists, and counts as finished (state ``MISSING``) after ``missing_polls`` answers without it.
    """

    def __init__(self, delay_s: int = 60) -> None:
        super().__init__(delay_s)
        self.dialect = "lsf10"
        self.max_failures = 10
        self.missing_polls = 2
        self.failure_backoff_s = 2.0
        self._result_files: dict[str, list[Path]] = {}
        self._missing: dict[str, int] = {}
        self._failures = 0
        self._retry_at = 0.0
        self.last_error = ""

    def clear(self) -> None:
        super().clear()
        self._missing = {}
        self._failures = 0
        self._retry_at = 0.0

    def register_job(self, job_id: str, result_files: tp.Sequence[Path] = ()) -> None:
        super().register_job(job_id)
        if result_files:
            self._result_files[job_id] = list(result_files)

    def _make_command(self) -> list[str] | None:
        to_check = self._registered - self._finished
        return bjobs_command(to_check, self.dialect) if to_check else None

    def read_info(self, string: bytes | str) -> dict[str, dict[str, str]]:
        """``bjobs`` output (of this watcher's dialect) -> {job id: {"State": ..., ...}}."""
        if isinstance(string, bytes):
            string = string.decode()
        answer = interpret(self.dialect, 0, string, "")
        return _info_from_answer(answer)

    def get_state(self, job_id: str, mode: str = "standard") -> str:
        return self.get_info(job_id, mode=mode).get("State") or "UNKNOWN"

    def is_done(self, job_id: str, mode: str = "standard") -> bool:
        return self.get_state(job_id, mode=mode) in FINISHED_STATES | {"MISSING"}

    def update_if_long_enough(self, mode: str) -> None:
        if mode == "standard" and self._failures:  # after a failed bjobs: retry on the back-off schedule
            if time.time() >= self._retry_at:
                self.update()
            return
        super().update_if_long_enough(mode)

    def _requeue_ages(self, answer: Answer) -> dict[str, float]:
        """Seconds since each finished-looking job wrote its requeue marker (next to its result pickle)."""
        ages = {}
        for job_id, st in answer.jobs.items():
            files = self._result_files.get(job_id)
            if st.finished and files:
                folder = utils.JobPaths.get_first_id_independent_folder(files[0].parent)
                age = rundir.requeue_age(folder, file_stem(job_id))
                if age is not None:
                    ages[job_id] = age
        return ages

    def update(self) -> None:
        to_check = self._registered - self._finished
        if not to_check:
            return
        self._num_calls += 1
        answer: Answer = query(to_check, self.dialect)
        self._last_status_check = time.time()
        if answer.fallback:  # this LSF rejects the configured form: say so once, then use the one it speaks
            _log.warning(answer.warning)
            self.dialect = answer.fallback
        if not answer.answered:
            self._failures += 1
            self.last_error = answer.warning or "no answer"
            if self._failures >= self.max_failures:
                raise LsfStatusError(
                    f"bjobs failed {self._failures} times in a row ({self.last_error}); the jobs may still be "
                    f"running: check them with `bjobs -a {' '.join(sorted({split_job_id(j)[0] for j in to_check}))}`"
                )
            backoff = min(float(self._delay_s), self.failure_backoff_s * 2 ** (self._failures - 1))
            self._retry_at = time.time() + backoff
            _log.warning(  # not submitit's logger: it prints warnings twice (stdout and stderr)
                f"bjobs call #{self.num_calls} failed ({self.last_error}); retrying in {backoff:.0f} s"
            )
            return
        self._failures = 0
        self._output = b""
        self._info_dict.update(_info_from_answer(answer, self._requeue_ages(answer)))
        for job_id in to_check:
            if job_id in answer.jobs:
                self._missing.pop(job_id, None)
                continue
            if any(p.exists() for p in self._result_files.get(job_id, ())):
                self._info_dict[job_id] = {"State": "DONE", "Source": "result file"}
                continue
            self._missing[job_id] = self._missing.get(job_id, 0) + 1
            if self._missing[job_id] >= self.missing_polls:
                self._info_dict[job_id] = {"State": "MISSING", "Source": "not in bjobs, no result file"}
        for job_id in to_check:
            if self.is_done(job_id, mode="cache"):
                self._finished.add(job_id)


def _info_from_answer(answer: Answer, requeue_ages: dict[str, float] | None = None) -> dict[str, dict[str, str]]:
    """submitit's info dicts; a job that ended (EXIT) right after asking to be requeued is ``REQUEUED``
    (not finished), as ``pipeline status`` shows it (``pipeline.launch.state.decide``)."""
    info = {}
    for job_id, st in answer.jobs.items():
        state = st.raw
        age = (requeue_ages or {}).get(job_id)
        if st.finished and age is not None:
            d = decide(rundir.RUNNING, True, True, st, True, answer.complete, age)
            state = "REQUEUED" if d.state == rundir.REQUEUED else state
        info[job_id] = {"State": state, "JobName": st.name or "", "ExitCode": st.exit_code or ""}
    return info


# ------------------------------------------------------------------------------------------------ job


class LsfJob(core.Job[core.R]):
    _cancel_command = "bkill"
    watcher = LsfInfoWatcher(delay_s=60)

    def __init__(self, folder: str | Path, job_id: str, tasks: tp.Sequence[int] = (0,)) -> None:
        self._lsf_ready = False
        super().__init__(folder, job_id, tasks)
        self._paths = LsfJobPaths(folder, job_id=job_id, task_id=self.task_id)
        self._lsf_ready = True
        self._register_in_watcher()

    @property
    def paths(self) -> LsfJobPaths:
        return tp.cast(LsfJobPaths, self._paths)

    def _register_in_watcher(self) -> None:
        if not getattr(self, "_lsf_ready", True):
            return  # core.Job.__init__ calls this before the LSF paths exist
        if not self._tasks[0]:
            self.watcher.register_job(self.tracked_id, result_files=[self.paths.result_pickle])

    @property
    def tracked_id(self) -> str:
        """The LSF job now running this one: itself, or the job that took over after a resubmission."""
        marker = self.paths.resubmitted
        if marker.exists():
            lines = [x.strip() for x in marker.read_text().splitlines() if x.strip()]
            if lines:
                return lines[-1]
        return self.job_id

    def wait(self) -> None:
        """Wait for the result (checked every 0.1 s at first, then up to every second)."""
        delay = 0.1
        while not self.done():
            time.sleep(delay)
            delay = min(1.0, delay * 1.5)

    def done(self, force_check: bool = False) -> bool:
        if self._sub_jobs:
            return all(sub_job.done() for sub_job in self._sub_jobs)
        try:
            self.paths.folder.chmod(self.paths.folder.stat().st_mode)  # NFS attribute cache refresh
        except OSError:
            pass
        if self.paths.result_pickle.exists():
            return True
        tracked = self.tracked_id
        if tracked != self.job_id:
            self.watcher.register_job(tracked, result_files=[self.paths.result_pickle])
        return self.watcher.is_done(tracked, mode="force" if force_check else "standard")

    @property
    def state(self) -> str:
        return self.watcher.get_state(self.tracked_id, mode="standard")

    def get_info(self, mode: str = "force") -> dict[str, str]:
        return self.watcher.get_info(self.tracked_id, mode=mode)

    def cancel(self, check: bool = True) -> None:
        (subprocess.check_call if check else subprocess.call)([self._cancel_command, self.tracked_id])

    def _interrupt(self, timeout: bool = False) -> None:
        """Send the run-limit warning signal (for tests): ``bkill -s USR2 <id>``."""
        subprocess.check_call(["bkill", "-s", LsfJobEnvironment.USR_SIG, self.tracked_id])


# ------------------------------------------------------------------------------------------------ inside a job


class LsfJobEnvironment(job_environment.JobEnvironment):
    """The running job: ``LSB_JOBID`` and ``LSB_JOBINDEX`` (0 outside an array) make the id ``123[4]``.

    ``SUBMITIT_LSF_JOB_ID`` (set in the script of a resubmitted job) keeps the original id, so the job
    reads and writes the original job's pickles and logs.
    """

    _env: tp.ClassVar[dict[str, str]] = {
        "job_id": "LSB_JOBID",
        "array_job_id": "LSB_JOBID",
        "array_task_id": "LSB_JOBINDEX",
        "num_tasks": "SUBMITIT_LSF_NTASKS",
        "num_nodes": "SUBMITIT_LSF_NNODES",
        "node": "SUBMITIT_LSF_NODEID",
        "global_rank": "SUBMITIT_LSF_GLOBAL_RANK",
        "local_rank": "SUBMITIT_LSF_LOCAL_RANK",
        "nodes": "LSB_MCPU_HOSTS",
    }

    def _index(self) -> int | None:
        raw = os.environ.get("LSB_JOBINDEX", "0").strip()
        return int(raw) if raw.isdigit() and int(raw) > 0 else None

    @property
    def lsf_job_ref(self) -> str:
        """The LSF job this process runs in (what brequeue needs): ``123[4]`` or ``123``."""
        return element_id(os.environ[self._env["job_id"]], self._index())

    @property
    def job_id(self) -> str:
        return os.environ.get("SUBMITIT_LSF_JOB_ID") or self.lsf_job_ref

    @property
    def array_job_id(self) -> str | None:
        base, index = split_job_id(self.job_id)
        return base if index else None

    @property
    def array_task_id(self) -> str | None:
        return str(split_job_id(self.job_id)[1] or "") or None

    @property
    def paths(self) -> LsfJobPaths:
        return LsfJobPaths(os.environ["SUBMITIT_FOLDER"], job_id=self.job_id, task_id=self.global_rank)

    @property
    def hostnames(self) -> list[str]:
        """``LSB_MCPU_HOSTS`` is ``"hostA 4 hostB 2"``; ``LSB_HOSTS`` repeats a host once per slot."""
        mcpu = os.environ.get("LSB_MCPU_HOSTS", "").split()
        if mcpu:
            return mcpu[0::2]
        hosts = os.environ.get("LSB_HOSTS", "").split()
        return list(dict.fromkeys(hosts)) or [self.hostname]

    def _handle_signals(self, paths: utils.JobPaths, submission: utils.DelayedSubmission) -> None:
        """At the job's start: install the handlers, and drop the requeue marker of an earlier attempt."""
        rundir.clear_requeue(self._submitit_folder(), file_stem(self.job_id))
        handler = LsfSignalHandler(self, paths, submission)
        signal.signal(signal.SIGTERM, handler.bypass)
        signal.signal(signal.SIGCONT, handler.bypass)
        signal.signal(self._usr_sig(), handler.checkpoint_and_try_requeue)

    def _requeue(self, countdown: int) -> None:
        """``brequeue <id>``: LSF kills this process and dispatches the job again under the same id.

        Where brequeue refuses (its answer says so, or it is missing), submit a new job that takes over
        this one's files instead. brequeue runs in its own session: LSF signals the job's process group
        as soon as it accepts the request, and must not kill brequeue before it has answered. An answer
        cut short by a signal is not a refusal (the request may have gone through): no resubmission then,
        since two jobs writing the same run directory is worse than one job to restart by hand.
        """
        ref = self.lsf_job_ref
        log = logger.get_logger()
        # LSF shows the job EXIT for a few seconds before PEND: the marker tells `pipeline status` and the
        # watcher that this EXIT is a requeue, not a failure
        rundir.mark_requeue(self._submitit_folder(), file_stem(self.job_id), self.job_id)
        try:
            proc = subprocess.run(["brequeue", ref], capture_output=True, text=True, timeout=60, check=False,
                                  start_new_session=True)
        except (OSError, subprocess.SubprocessError) as e:
            refused, said = True, str(e)
        else:
            said = " | ".join((proc.stdout + proc.stderr).strip().splitlines())[:300]
            if proc.returncode == 0 or "is being requeued" in proc.stdout:
                log.info(f"Requeued job {ref} with brequeue ({countdown} remaining timeouts)")
                return
            refused = proc.returncode > 0
        if not refused:
            raise utils.UncompletedJobError(
                f"brequeue {ref} was interrupted before it answered ({said or 'no output'}); if `bjobs {ref}` "
                "does not show it pending, resubmit the run: it resumes from its last checkpoint")
        log.warning(f"brequeue {ref} refused ({said}); resubmitting instead")
        new_id = self._resubmit()
        log.info(f"Resubmitted job {self.job_id} as LSF job {new_id} ({countdown} remaining timeouts)")

    def _submitit_folder(self) -> Path:
        """The sweep's flat submitit folder (where the pickles, logs and markers of every job live)."""
        return utils.JobPaths.get_first_id_independent_folder(os.environ["SUBMITIT_FOLDER"])

    def _resubmit(self) -> str:
        indep = utils.JobPaths.get_first_id_independent_folder(os.environ["SUBMITIT_FOLDER"])
        base, _ = split_job_id(self.job_id)
        spec_path = indep / f"{base}_bsub.json"
        spec = json.loads(spec_path.read_text())
        text = make_bsub_string(command=spec["command"], folder=spec["folder"], resubmit_of=self.job_id,
                                 **spec["parameters"])
        script = indep / f".resubmission_{uuid.uuid4().hex}.sh"
        script.write_text(text)
        new_id = run_bsub(script, own_session=True)
        script.rename(indep / f"{file_stem(self.job_id)}_resubmission_{new_id}.sh")
        with self.paths.resubmitted.open("a") as f:
            f.write(new_id + "\n")
        return new_id


class LsfSignalHandler(job_environment.SignalHandler):
    """submitit's handler, made safe for LSF's signal sequence.

    USR2 (``-wa USR2`` warning, or LSF's signal at the run limit) checkpoints and requeues once: a second
    USR2, a TERM or an INT (LSF's kill sequence, or brequeue killing this process) that arrives while
    that is under way is logged and ignored, so the job is never requeued twice. ``max_num_timeout`` is
    enforced by submitit's countdown. A task that handles USR2 itself (``pipeline.train.train`` saves
    ``checkpoints/last`` at the next step boundary) calls this handler afterwards to requeue.
    """

    def __init__(self, *args: tp.Any) -> None:
        super().__init__(*args)
        self.phase = "running"  # running -> requeuing

    def checkpoint_and_try_requeue(self, signum: int, frame: types.FrameType | None = None) -> None:
        if self.phase != "running":
            self._logger.warning(f"Ignoring {signal.Signals(signum).name}: checkpoint and requeue under way")
            return
        self.phase = "requeuing"  # for good: this process exits next, whatever happens
        signal.signal(signal.SIGINT, self.bypass)  # brequeue makes LSF send INT, TERM, KILL
        super().checkpoint_and_try_requeue(signum, frame)

    def bypass(self, signum: int, frame: types.FrameType | None = None) -> None:
        if self.phase == "requeuing":
            self._logger.warning(f"Ignoring {signal.Signals(signum).name} while checkpointing and requeuing")
            return
        super().bypass(signum, frame)


# ------------------------------------------------------------------------------------------------ executor


class LsfExecutor(core.PicklingExecutor):
    """LSF job executor: pickles each call, writes one bsub script per array and submits it.

    Parameters
    ----------
    folder: Path/str
        folder for pickles, scripts and logs (shared with the compute nodes, e.g. under /work3)
    max_num_timeout: int
        how many times a checkpointable job is requeued after reaching its run limit
    python: str
        shell command that runs Python on the compute nodes (default: this interpreter, quoted)
    dry_run: bool
        write the scripts and pickles, but do not run bsub (job ids ``DRYRUN<n>``)

    Use ``update_parameters`` for the bsub options (see ``make_bsub_string``); an unknown key raises a
    ValueError listing the valid ones with their defaults.
    """

    job_class = LsfJob

    def __init__(self, folder: str | Path, max_num_timeout: int = 3, max_pickle_size_gb: float = 1.0,
                 python: str | None = None, dry_run: bool = False) -> None:
        super().__init__(folder, max_num_timeout=max_num_timeout, max_pickle_size_gb=max_pickle_size_gb)
        self.python = shlex.quote(sys.executable) if python is None else python
        self.dry_run = dry_run

    @classmethod
    def _equivalence_dict(cls) -> core.EquivalenceDict:
        return tp.cast(core.EquivalenceDict, dict(GENERIC_KEYS))  # the one table (submitit_lsf.bjobs)

    @classmethod
    def _valid_parameters(cls) -> set[str]:
        return set(_get_default_parameters())

    def _internal_update_parameters(self, **kwargs: tp.Any) -> None:
        defaults = _get_default_parameters()
        invalid = sorted(set(kwargs) - set(defaults))
        if invalid:
            string = "\n  - ".join(f"{x} (default: {y!r})" for x, y in sorted(defaults.items()))
            raise ValueError(f"Unavailable parameter(s): {invalid}\nValid parameters are:\n  - {string}")
        # check that the parameters, merged with those already set, make a script LSF accepts
        make_bsub_string(command="nothing to do", folder=self.folder, **{**self.parameters, **kwargs})
        super()._internal_update_parameters(**kwargs)

    @classmethod
    def affinity(cls) -> int:
        return -1 if shutil.which("bsub") is None else 2

    @property
    def _submitit_command_str(self) -> str:
        return " ".join([self.python, "-u -m submitit.core._submit", shlex.quote(str(self.folder))])

    def _num_tasks(self) -> int:
        return 1  # one task per job (nodes=1, tasks_per_node=1 are enforced by make_bsub_string)

    def _make_submission_file_text(self, command: str, uid: str) -> str:
        return make_bsub_string(command=command, folder=self.folder, **self.parameters)

    def _make_submission_command(self, submission_file_path: Path) -> list[str]:
        return ["bsub"]  # the script goes on stdin: bsub reads #BSUB lines only from there

    @staticmethod
    def _get_job_id_from_submission_command(string: bytes | str) -> str:
        if isinstance(string, bytes):
            string = string.decode()
        try:
            return parse_bsub_output(string)
        except ValueError as e:
            raise LsfSubmissionError(str(e)) from e

    def check_can_submit(self) -> None:
        """Fail before any pickle or bsub when submission cannot work."""
        if not self.dry_run and shutil.which("bsub") is None:
            raise BsubNotFoundError()

    def _internal_process_submissions(
        self, delayed_submissions: list[utils.DelayedSubmission]
    ) -> list[core.Job[tp.Any]]:
        self.check_can_submit()
        if not delayed_submissions:
            return []
        LsfJob.watcher.dialect = self.parameters.get("dialect", "lsf10")
        indep = utils.JobPaths.get_first_id_independent_folder(self.folder)
        indep.mkdir(parents=True, exist_ok=True)
        timeout_min = self.parameters.get("timeout_min", _get_default_parameters()["timeout_min"])
        pickles = []
        for k, delayed in enumerate(delayed_submissions):
            path = indep / f"{uuid.uuid4().hex}.pkl"
            delayed.set_timeout(timeout_min, self.max_num_timeout)
            delayed.dump(path)
            pickles.append(path)
            if k == 0:
                estimate = len(delayed_submissions) * path.stat().st_size / 1024**3
                if estimate > self.max_pickle_size_gb:
                    for p in pickles:
                        p.unlink()
                    raise RuntimeError(
                        f"Submitting an estimated {estimate:.2f} GB of pickles (> max_pickle_size_gb="
                        f"{self.max_pickle_size_gb}); raise max_pickle_size_gb if this is intended"
                    )
        n = len(delayed_submissions)
        if n == 1:
            job = LsfJob(self.folder, self._submit_or_clean_up(None, pickles))
            job.paths.move_temporary_file(pickles[0], "submitted_pickle")
            return [job]
        jobs: list[core.Job[tp.Any]] = []
        size = int(self.parameters.get("max_array_size", _get_default_parameters()["max_array_size"]))
        for start in range(0, n, size):
            count = min(size, n - start)
            try:
                base = self._submit_or_clean_up(count, pickles[start:])
            except utils.FailedSubmissionError as e:
                if not jobs:
                    raise
                done = sorted({split_job_id(j.job_id)[0] for j in jobs})
                raise LsfPartlySubmittedError(
                    f"{e}; job arrays {', '.join(done)} (jobs 0-{start - 1} of this batch) were submitted before: "
                    "bkill them, or let them run and submit the rest") from e
            chunk = [LsfJob(self.folder, element_id(base, k + 1)) for k in range(count)]
            for job, path in zip(chunk, pickles[start:start + count]):
                job.paths.move_temporary_file(path, "submitted_pickle")
            jobs.extend(chunk)
        return jobs

    def _submit_or_clean_up(self, map_count: int | None, pickles: list[Path]) -> str:
        try:
            return self._submit_script(map_count)
        except BaseException:
            for p in pickles:
                p.unlink(missing_ok=True)
            raise

    def _submit_script(self, map_count: int | None) -> str:
        """Write the script, submit it (bsub reads it on stdin), keep it next to the logs; the job id."""
        self._throttle()
        self._last_job_submitted = time.time()
        indep = utils.JobPaths.get_first_id_independent_folder(self.folder)
        command = self._submitit_command_str
        params = dict(self.parameters)
        text = make_bsub_string(command=command, folder=self.folder, map_count=map_count, **params)
        tmp = indep / f".submission_file_{uuid.uuid4().hex}.sh"
        tmp.write_text(text)
        if self.dry_run:  # DRYRUN1, DRYRUN2, ...: the next number free in this folder
            taken = [int(m.group(1)) for p in indep.glob("DRYRUN*_bsub.json")
                     if (m := re.match(r"DRYRUN(\d+)_bsub\.json$", p.name))]
            job_id = f"DRYRUN{max(taken, default=0) + 1}"
        else:
            job_id = run_bsub(tmp)
        first = element_id(job_id, 1 if map_count is not None else None)
        paths = LsfJobPaths(self.folder, job_id=first)
        paths.folder.mkdir(parents=True, exist_ok=True)
        tmp.rename(paths.submission_file)
        spec = {"command": command, "folder": str(self.folder), "parameters": params}
        (indep / f"{job_id}_bsub.json").write_text(json.dumps(spec, indent=1, default=str) + "\n")
        return job_id


def run_bsub(script: Path, own_session: bool = False) -> str:
    """Submit ``script`` on bsub's stdin and return the job id; bsub's exit code and stderr are the truth.

    ``own_session``: for a bsub run from inside a job, out of reach of the signals LSF sends that job.
    """
    try:
        with script.open() as f:
            proc = subprocess.run(["bsub"], stdin=f, capture_output=True, text=True, timeout=300, check=False,
                                  start_new_session=own_session)
    except FileNotFoundError as e:
        raise BsubNotFoundError() from e
    except subprocess.TimeoutExpired as e:
        raise LsfSubmissionError(f"bsub did not answer within 300 s (script {script}); check bjobs before "
                                 "submitting again") from e
    said = (proc.stderr or proc.stdout).strip().replace("\n", " | ")[:500]
    if proc.returncode != 0:
        raise LsfSubmissionError(f"bsub refused the job (exit {proc.returncode}): {said} (script {script})")
    try:
        job_id = parse_bsub_output(proc.stdout)
    except ValueError as e:
        raise LsfSubmissionError(f"{e} (script {script})") from e
    if proc.stderr.strip():
        logger.get_logger().warning(f"bsub (job {job_id}) said on stderr: {proc.stderr.strip()[:500]}")
    return job_id
