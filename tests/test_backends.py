"""The scheduler-backend interface (issue 20): one class per scheduler, chosen in one place, and nothing
else that branches on a scheduler's name; the decisions the backends feed (the aggregation job's state, the
jobs' environment), as pure functions. No scheduler, no training: seconds."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from pipeline.launch import S_DONE, S_EXIT, S_PENDING, S_RUNNING, SchedJob
from pipeline.launch.backend import BACKENDS, Backend, backend, backend_names, current_job, get_backend
from pipeline.launch.job_env import JOB_TMP_DIR, core_share, job_env
from pipeline.launch.payload import PLUGIN_ROOT
from pipeline.launch.sweep_status import aggregate_decision

ROOT = Path(__file__).resolve().parents[1]
#: the modules that may name schedulers: the interface, its registry and the backends themselves
BACKEND_MODULES = {"pipeline/launch/backend.py", "pipeline/launch/lsf.py", "pipeline/launch/slurm.py",
                   "pipeline/launch/local.py"}
NAME = r"""["'](?:lsf|slurm|local)["']"""
BRANCHES = re.compile(rf"(?:==|!=)\s*{NAME}|{NAME}\s*(?:==|!=)|\bin\s*[(\[{{]\s*{NAME}"  # comparisons, membership
                      rf"|^\s*{NAME}\s*:|[{{,]\s*{NAME}\s*:")  # dispatch tables keyed by name


def branches_on_a_name(text: str) -> list[str]:
    """Lines that compare a value with a scheduler's name, test membership in a tuple of names, or key a
    dict by them (a dispatch table)."""
    return [line.strip() for line in text.splitlines() if BRANCHES.search(line.split("#", 1)[0])]


def test_no_code_outside_the_backends_branches_on_a_schedulers_name():
    found = []
    for top in ("pipeline", "hydra_plugins"):
        for path in sorted((ROOT / top).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            if rel in BACKEND_MODULES or rel.startswith("pipeline/launch/submitit_lsf/"):
                continue
            found += [f"{rel}: {line}" for line in branches_on_a_name(path.read_text())]
    assert not found, "branches on a scheduler's name outside the backends:\n" + "\n".join(found)


def test_the_name_check_is_not_vacuous():
    caught = ['if sweep.scheduler == "lsf":', "elif 'slurm' != name:", 'if sched in ("lsf", "slurm"):',
              'DEFAULT_INTERVAL = {"local": 1.0, "lsf": 10.0}', '    "local": 1.0,']
    passed = ['backend("lsf")', 'ConfigStore.instance().store(group="hydra/launcher", name="lsf")',
              'x = "local"  # == "lsf" in a comment', 'cluster_name: local']
    assert [bool(branches_on_a_name(line)) for line in caught] == [True] * len(caught)
    assert [bool(branches_on_a_name(line)) for line in passed] == [False] * len(passed)


# ------------------------------------------------------------------------------------------ the registry


def test_one_registry_and_every_backend_implements_the_interface():
    assert backend_names() == ["lsf", "slurm", "local"]
    for name in BACKENDS:
        cls = get_backend(name)
        assert issubclass(cls, Backend) and cls.name == name and cls.poll_s > 0
        be = backend(name, {"submitit_folder": "/tmp/x"})  # instantiable: every abstract method implemented
        assert be.params == {"submitit_folder": "/tmp/x"}
    assert [get_backend(n).blocking for n in BACKENDS] == [False, False, True]
    with pytest.raises(ValueError, match="unknown scheduler 'pbs'; valid: lsf, slurm, local"):
        get_backend("pbs")


def test_ids_logs_and_commands_per_backend():
    lsf, slurm, local = (backend(n) for n in BACKENDS)
    assert (lsf.base_id("123[4]"), lsf.file_stem("123[4]"), lsf.base_id("9")) == ("123", "123_4", "9")
    assert (slurm.base_id("456_3"), slurm.file_stem("456_3")) == ("456", "456_3")
    assert (local.base_id("777"), local.file_stem("777")) == ("777", "777")
    assert lsf.peek_command("123[4]", follow=True) == ["bpeek", "-f", "123[4]"]
    assert slurm.peek_command("456_3") is None and local.peek_command("777") is None
    assert lsf.arrays(["5[1]", "5[2]", "6[1]"], [0, 1, 2]) == [{"job_id": "5", "size": 2, "first_job_num": 0},
                                                              {"job_id": "6", "size": 1, "first_job_num": 2}]
    assert local.arrays(["11", "12"], [0, 1]) == []


def test_kill_is_one_call_with_the_schedulers_command():
    calls = []

    def runner(argv):
        calls.append(argv)
        return 0, "Job <5> is being terminated", ""

    for name in BACKENDS:
        backend(name, runner=runner).kill(["5", "6"])
    assert calls == [["bkill", "5", "6"], ["scancel", "5", "6"], ["kill", "-TERM", "5", "6"]]


def test_the_job_a_process_runs_in_is_read_by_its_backend():
    assert current_job({"LSB_JOBID": "12", "LSB_JOBINDEX": "3"}) == ("lsf", "12[3]")
    assert current_job({"LSB_JOBID": "12", "LSB_JOBINDEX": "0"}) == ("lsf", "12")
    assert current_job({"SLURM_JOB_ID": "9", "SLURM_ARRAY_JOB_ID": "4", "SLURM_ARRAY_TASK_ID": "2"}) == ("slurm", "4_2")
    assert current_job({"SLURM_JOB_ID": "9"}) == ("slurm", "9")
    assert current_job({"SUBMITIT_EXECUTOR": "local", "SUBMITIT_LOCAL_JOB_ID": "77"}) == ("local", "77")
    assert current_job({"SUBMITIT_EXECUTOR": "slurm"}) == ("none", None)
    inside_bsub_is = {"LSB_JOBID": "12", "SUBMITIT_EXECUTOR": "local", "SUBMITIT_LOCAL_JOB_ID": "77"}
    assert current_job(inside_bsub_is) == ("local", "77")  # a local sweep in an interactive LSF job


def test_queries_without_ids_ask_no_scheduler():
    def never(argv):
        raise AssertionError(f"asked {argv}")

    for name in ("lsf", "slurm"):
        answer = backend(name, runner=never).query([], {})
        assert not answer.answered and answer.scheduler == name


# ------------------------------------------------------------------------------------------ item 11


@pytest.mark.parametrize("job, answered, complete, current, said", [
    (SchedJob("23", "RUN", S_RUNNING), True, True, True, "RUN"),  # item 11: results/ written, still running
    (SchedJob("23", "PEND", S_PENDING), True, True, False, "PEND"),
    (SchedJob("23", "DONE", S_DONE), True, True, True, "done (results/ written)"),
    (SchedJob("23", "DONE", S_DONE), True, True, False, "DONE (no current results/)"),
    (SchedJob("23", "EXIT", S_EXIT, "1"), True, True, True, "failed (EXIT, exit code 1)"),
    (None, True, True, True, "done (results/ written)"),  # forgotten by bjobs after it ended
    (None, True, True, False, "ended without writing results/"),
    (None, False, False, True, "unknown (the scheduler did not answer)"),  # not "done": nobody said it ended
])
def test_the_aggregation_job_is_done_only_when_the_scheduler_says_it_ended(job, answered, complete, current, said):
    assert aggregate_decision(job, answered, complete, current) == said


def test_the_current_aggregation_job_is_always_asked_about(tmp_path):
    """Even with results/ written after it was submitted (the job writes it before it ends)."""
    from pipeline import rundir
    from pipeline.launch.sweep_status import query_ids
    from pipeline.results.results import load_sweep
    from tests.results.make_runs import write_run, write_sweep_json

    write_run(tmp_path / "0", ["seed=0"], state="completed", job_id="22[1]", scheduler="lsf")
    meta = write_sweep_json(tmp_path, "lsf", [{"job_num": 0, "job_id": "22[1]", "overrides": ["seed=0"]}])
    rundir.set_aggregate_job(meta, "23")
    rundir.write_manifest(tmp_path, meta)
    rundir.results_json(tmp_path).parent.mkdir()
    rundir.results_json(tmp_path).write_text("{}")
    sweep = load_sweep(tmp_path)
    assert rundir.results_are_current(tmp_path, sweep.meta)
    assert query_ids(sweep, backend("lsf")) == ["23"]


# ------------------------------------------------------------------------------------------ job environment


def _cfg(**extra):
    return OmegaConf.create({"paths": {"output_root": "/scratch/me/out"}, "model": {"path": "x"}, **extra})


def test_job_environment(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    env = job_env(_cfg(), {"gpus_per_node": 2}, at_once=None)
    assert env == {"PYTHONPATH": env["PYTHONPATH"], "PIPELINE_GPUS": "2", "HF_HUB_OFFLINE": "1",
                   "TMPDIR": f"/scratch/me/out/{JOB_TMP_DIR}"}
    assert env["PYTHONPATH"].split(":")[0] == PLUGIN_ROOT
    local = job_env(_cfg(model={"path": "x", "download": True}), {"gpus_per_node": 0}, at_once=4)
    assert "PIPELINE_GPUS" not in local and "HF_HUB_OFFLINE" not in local
    assert local["OMP_NUM_THREADS"] == str(core_share(4))
    monkeypatch.setenv("OMP_NUM_THREADS", "3")  # a setting of the user's wins
    assert job_env(None, {}, at_once=4) == {"PYTHONPATH": env["PYTHONPATH"], "OMP_NUM_THREADS": "3"}


def test_lsf_exports_the_job_environment_after_the_users_env():
    from pipeline.launch.lsf import executor_parameters

    params = {"submitit_folder": "/f", "wait": False, "queue": "hpc", "cpus_per_task": 4, "gpus_per_node": 1,
              "name": "train", "timeout_min": 60, "mem_gb": None, "env": {"MINE": "1"}, "aggregate": True}
    out = executor_parameters(params, {"PYTHONPATH": "/repo", "PIPELINE_GPUS": "1", "HF_HUB_OFFLINE": "1"})
    assert out == {"job_name": "train", "timeout_min": 60, "cores": 4, "gpus": 1, "queue": "hpc",
                   "env": {"PYTHONPATH": "/repo", "MINE": "1", "PIPELINE_GPUS": "1", "HF_HUB_OFFLINE": "1"}}
    assert list(out["env"]) == ["PYTHONPATH", "MINE", "PIPELINE_GPUS", "HF_HUB_OFFLINE"]


def test_local_submission_does_not_leave_the_job_environment_in_this_process(monkeypatch):
    import os

    from pipeline.launch.local import scoped_environ

    monkeypatch.setenv("KEPT", "before")
    monkeypatch.delenv("NEW_ONE", raising=False)
    before = dict(os.environ)
    with scoped_environ({"KEPT": "during", "NEW_ONE": "x"}):
        assert os.environ["KEPT"] == "during" and os.environ["NEW_ONE"] == "x"
    assert dict(os.environ) == before


# ------------------------------------------------------------------------------------------ submit_calls


class _Job:
    def __init__(self, job_id: str, folder: Path) -> None:
        self.job_id = job_id
        self.paths = type("P", (), {"stdout": folder / f"{job_id}.out", "stderr": folder / f"{job_id}.err"})()


class _ArrayBackend(Backend):
    """A scheduler that numbers the elements of one array 7[1], 7[2], ... (LSF's ids), submitting nothing."""

    name = "lsf"

    def base_id(self, job_id):
        return job_id.split("[")[0]

    def query(self, job_ids, manifest):
        raise AssertionError("not asked")

    def make_executor(self):
        return None

    def submit(self, executor, calls, on_start=None, on_wait=None):
        jobs = [_Job(f"7[{i + 1}]", Path(self.params["folder"])) for i in range(len(calls))]
        for i, job in enumerate(jobs):
            on_start(i, job)
        return jobs


def test_submit_calls_records_each_points_job_and_the_array(tmp_path):
    """The step a first launch, a rerun and (issue 21) a study's workers share: N calls, one array."""
    from pipeline import rundir
    from pipeline.launch.launcher import submit_calls

    be = _ArrayBackend({"folder": str(tmp_path)})
    manifest = rundir.manifest(scheduler="lsf", submitit_folder=tmp_path, arrays=[], gpus_per_job=0,
                               jobs=[rundir.job_entry(n, None, None, None, None, [f"seed={n}"]) for n in range(3)])
    jobs = submit_calls(be, None, tmp_path, [print, print], [[0, 1], [2]], manifest)  # a pack of 2, then 1
    assert [j.job_id for j in jobs] == ["7[1]", "7[2]"]
    on_disk = rundir.read_manifest(tmp_path)
    assert [(j["job_num"], j["job_id"]) for j in on_disk["jobs"]] == [(0, "7[1]"), (1, "7[1]"), (2, "7[2]")]
    assert on_disk["jobs"][2]["stdout"] == str(tmp_path / "7[2].out")
    assert on_disk["arrays"] == [{"job_id": "7", "size": 3, "first_job_num": 0}]

    submit_calls(be, None, tmp_path, [print], [[1]], on_disk, rerun=True)  # a rerun of point 1
    assert rundir.read_manifest(tmp_path)["arrays"][-1] == {"job_id": "7", "size": 1, "first_job_num": 1,
                                                            "job_nums": [1], "rerun": True}

    study = rundir.manifest(scheduler="lsf", submitit_folder=tmp_path, arrays=[], jobs=[], gpus_per_job=0)
    submit_calls(be, None, tmp_path / "s", [print, print], [[], []], study)  # workers that pick their points
    assert study["jobs"] == [] and study["arrays"] == [{"job_id": "7", "size": 2, "first_job_num": None}]
