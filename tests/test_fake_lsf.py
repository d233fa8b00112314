"""Tests of the fake LSF 10.1 in tests/fake_lsf (the executor tests lean on its fidelity)."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest

from tests.fake_lsf import fixture as fake_lsf_fixture

fake_lsf = fake_lsf_fixture.fake_lsf  # the lead also wires it up in tests/conftest.py

pytestmark = pytest.mark.lsf

SUBMIT_RE = re.compile(r"^Job <(\d+)> is submitted to (default )?queue <([^>]+)>\.$")


def _jobid(stdout: str) -> int:
    m = SUBMIT_RE.match(stdout.strip())
    assert m, stdout
    return int(m.group(1))


def _script(path: Path, text: str) -> Path:
    path.write_text(text)
    path.chmod(0o755)
    return path


# ---------------------------------------------------------------------------------------------------
# bsub


def test_stdin_script_parses_bsub_lines_and_file_argument_does_not(fake_lsf, tmp_path):
    script = _script(tmp_path / "job.sh",
                     "#!/bin/sh\n#BSUB -J parsed\n#BSUB -q gpuv100\n#BSUB -o out_%J.txt\n"
                     "echo ran-$LSB_JOBID\n")
    res = fake_lsf.run("bsub", input=script.read_text(), cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert res.stdout == f"Job <{_jobid(res.stdout)}> is submitted to queue <gpuv100>.\n"
    a = _jobid(res.stdout)

    # command-line options override #BSUB lines
    res = fake_lsf.run("bsub", "-q", "hpc", "-J", "override", input=script.read_text(), cwd=tmp_path)
    b = _jobid(res.stdout)

    # a file argument is a command: its #BSUB lines are not read
    res = fake_lsf.run("bsub", "./job.sh", cwd=tmp_path)
    assert res.stdout.endswith("is submitted to default queue <normal>.\n")
    c = _jobid(res.stdout)

    # ... unless LSB_BSUB_PARSE_SCRIPT=Y
    fake_lsf.setenv("LSB_BSUB_PARSE_SCRIPT", "Y")
    d = _jobid(fake_lsf.run("bsub", "job.sh", cwd=tmp_path).stdout)

    jobs = fake_lsf.wait_all(timeout=15)
    assert (jobs[a]["name"], jobs[a]["queue"]) == ("parsed", "gpuv100")
    assert (jobs[b]["name"], jobs[b]["queue"]) == ("override", "hpc")
    assert (jobs[c]["name"], jobs[c]["queue"]) == ("./job.sh", "normal")
    assert (jobs[d]["name"], jobs[d]["queue"]) == ("parsed", "gpuv100")
    assert all(jobs[j]["elements"]["0"]["stat"] == "DONE" for j in (a, b, c, d))
    assert f"ran-{a}" in (tmp_path / f"out_{a}.txt").read_text()
    assert not (tmp_path / f"out_{c}.txt").exists()
    assert (tmp_path / f"out_{d}.txt").exists()
    assert [c["argv"] for c in fake_lsf.calls("bsub")][-1] == ["job.sh"]


def test_bsub_rejections(fake_lsf, tmp_path):
    res = fake_lsf.run("bsub", "-foo", "true")
    assert res.returncode == 255 and "bsub: illegal option -- foo" in res.stderr and "Usage" in res.stderr

    res = fake_lsf.run("bsub", "-J", "big[1-1001]", "true")
    assert res.returncode == 255 and res.stderr.strip() == "Job array index too large. Job not submitted."
    fake_lsf.setenv("FAKE_LSF_MAX_JOB_ARRAY_SIZE", "10")
    assert fake_lsf.run("bsub", "-J", "a[1-11]", "true").returncode == 255
    assert fake_lsf.run("bsub", "-J", "a[2-20:2]", "true").returncode == 255  # max index counts too
    assert fake_lsf.run("bsub", "-J", "a[1-10]", "true").returncode == 0

    fake_lsf.setenv("FAKE_LSF_QUEUES", "hpc,gpuv100")
    res = fake_lsf.run("bsub", "-q", "gpux", "true")
    assert res.returncode == 255 and res.stderr.strip() == "gpux: No such queue. Job not submitted."

    res = fake_lsf.run("bsub", "-w", "done(424242)", "-q", "hpc", "true")
    assert res.returncode == 255 and "No matching job found. Job not submitted." in res.stderr
    assert fake_lsf.run("bsub", "-q", "hpc", input="").stderr.strip() == "Empty job. Job not submitted."
    assert len(fake_lsf.jobs()) == 1  # only the accepted a[1-10]
    fake_lsf.wait_all(timeout=15)


# ---------------------------------------------------------------------------------------------------
# arrays, environment, output


def test_array_slot_limit_and_environment(fake_lsf, tmp_path):
    script = (
        "#BSUB -J \"arr[1-4]%2\"\n"
        "python3 -c 'import time; print(time.time())' > start.$LSB_JOBINDEX\n"
        "echo \"$LSB_JOBID $LSB_JOBINDEX $LSB_JOBNAME $LSB_JOBINDEX_END $LSB_QUEUE $LSB_MAX_NUM_PROCESSORS"
        " $LS_SUBCWD\" > env.$LSB_JOBINDEX\n"
        "sleep 0.6\n"
        "python3 -c 'import time; print(time.time())' > end.$LSB_JOBINDEX\n"
    )
    jid = fake_lsf.submit("-n", "2", script=script, cwd=tmp_path)
    seen_running = []
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        stats = fake_lsf.stats(jid)
        seen_running.append(sum(s == "RUN" for s in stats.values()))
        if all(s == "DONE" for s in stats.values()):
            break
        time.sleep(0.05)
    assert max(seen_running) == 2
    spans = [(float((tmp_path / f"start.{i}").read_text()), float((tmp_path / f"end.{i}").read_text()))
             for i in range(1, 5)]
    for t, _ in spans:  # at no start instant were more than two elements inside their span
        assert sum(1 for s, e in spans if s <= t < e) <= 2
    for i in range(1, 5):
        assert (tmp_path / f"env.{i}").read_text().split() == [
            str(jid), str(i), f"arr[{i}]", "4", "normal", "2", str(tmp_path)]

    single = fake_lsf.submit("echo $LSB_JOBINDEX:$LSB_JOBNAME > idx.txt", cwd=tmp_path)
    fake_lsf.wait_all(timeout=10)
    assert (tmp_path / "idx.txt").read_text().strip() == "0:echo $LSB_JOBINDEX:$LSB_JOBNAME > idx.txt"
    assert fake_lsf.stat(single) == "DONE"


def test_output_file_written_at_end_and_bpeek_meanwhile(fake_lsf, tmp_path):
    jid = fake_lsf.submit("-J", "peek[1]", "-o", "log_%J_%I.out", "-e", "log_%J_%I.err",
                          script="echo line-one\necho to-stderr >&2\ntouch started\nsleep 1.2\n"
                                 "echo line-two\n", cwd=tmp_path)
    out = tmp_path / f"log_{jid}_1.out"
    deadline = time.monotonic() + 10
    while not (tmp_path / "started").exists():
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert not out.exists()  # LSF spools stdout until the job ends
    res = fake_lsf.run("bpeek", f"{jid}[1]")
    assert res.returncode == 0
    assert res.stdout.startswith("<< output from stdout >>\nline-one\n")
    assert "<< output from stderr >>\nto-stderr" in res.stdout
    assert fake_lsf.run("bpeek", str(jid)).returncode == 0  # a one-element array is fine
    follow = fake_lsf.run("bpeek", "-f", f"{jid}[1]")  # follows until the job ends
    assert follow.stdout.startswith("<< output from stdout >>\n") and "line-two" in follow.stdout
    fake_lsf.wait_all(timeout=10)
    text = out.read_text()
    assert text.startswith("Sender: LSF System <")
    assert f"Subject: Job {jid}[1]: <peek[1]> in cluster <" in text
    assert "Successfully completed." in text
    assert text.split("The output (if any) follows:\n\n")[1].startswith("line-one\nline-two\n")
    assert f"Read file <{tmp_path / f'log_{jid}_1.err'}> for stderr output of this job." in text
    assert (tmp_path / f"log_{jid}_1.err").read_text() == "to-stderr\n"
    res = fake_lsf.run("bpeek", f"{jid}[1]")
    assert res.returncode == 255 and "Job has already finished" in res.stderr

    # LSB_STDOUT_DIRECT=Y: the file grows while the job runs, the report is appended at the end
    fake_lsf.setenv("LSB_STDOUT_DIRECT", "Y")
    jid2 = fake_lsf.submit("-o", "direct_%J.out", script="echo early\ntouch started2\nsleep 0.8\n",
                           cwd=tmp_path)
    while not (tmp_path / "started2").exists():
        time.sleep(0.05)
    assert (tmp_path / f"direct_{jid2}.out").read_text() == "early\n"
    fake_lsf.wait_all(timeout=10)
    assert "Successfully completed." in (tmp_path / f"direct_{jid2}.out").read_text()


def test_oo_overwrites_and_o_appends(fake_lsf, tmp_path):
    (tmp_path / "a.out").write_text("old\n")
    (tmp_path / "b.out").write_text("old\n")
    fake_lsf.submit("-o", "a.out", "echo new", cwd=tmp_path)
    fake_lsf.submit("-oo", "b.out", "echo new", cwd=tmp_path)
    fake_lsf.wait_all(timeout=10)
    assert (tmp_path / "a.out").read_text().startswith("old\nSender: LSF System")
    assert (tmp_path / "b.out").read_text().startswith("Sender: LSF System")


# ---------------------------------------------------------------------------------------------------
# run limit and warning action


TRAP = (
    "trap 'python3 -c \"import time; print(time.time())\" > got_{sig}' {sig}\n"
    "python3 -c 'import time; print(time.time())' > started\n"
    "i=0; while [ $i -lt 300 ]; do sleep 0.05; i=$((i+1)); done\n"
)


def test_run_limit_sends_usr2_then_kill(fake_lsf, tmp_path):
    jid = fake_lsf.submit("-W", "2", "-o", "rl.out", script=TRAP.format(sig="USR2"), cwd=tmp_path)  # 1 s
    fake_lsf.wait_all(timeout=15)
    el = fake_lsf.job(jid)["elements"]["0"]
    assert el["stat"] == "EXIT" and el["exit_code"] == 137 and el["term"] == "TERM_RUNLIMIT"
    got = float((tmp_path / "got_USR2").read_text())
    assert 0.95 <= got - el["start"] < 3.0  # USR2 at the limit (1 s), handled by the trap
    assert el["finish"] - el["start"] >= 1.95  # SIGKILL only FAKE_LSF_KILL_GRACE (1 s) later
    text = (tmp_path / "rl.out").read_text()
    assert "TERM_RUNLIMIT: job killed after reaching LSF run time limit.\nExited with exit code 137." in text
    res = fake_lsf.run("bjobs", "-o", "exit_code exit_reason runtimelimit", "-noheader", str(jid))
    assert res.stdout.split()[:2] == ["137", "TERM_RUNLIMIT:"]


def test_warning_action_before_run_limit(fake_lsf, tmp_path):
    script = ("trap 'python3 -c \"import time; print(time.time())\" > got_warn; exit 0' USR1\n"
              "python3 -c 'import time; print(time.time())' > started\n"
              "i=0; while [ $i -lt 300 ]; do sleep 0.05; i=$((i+1)); done\n")
    jid = fake_lsf.submit("-W", "4", "-wa", "USR1", "-wt", "1", script=script, cwd=tmp_path)  # warn at 1.5 s
    fake_lsf.wait_all(timeout=15)
    el = fake_lsf.job(jid)["elements"]["0"]
    assert 1.45 <= float((tmp_path / "got_warn").read_text()) - el["start"] < 3.0
    # DONE proves the warning came first: USR2 at the 2 s limit would have killed the shell (exit 140)
    assert el["stat"] == "DONE"
    res = fake_lsf.run("bjobs", "-o", "warning_action action_warning_time", "-noheader", str(jid))
    assert res.stdout.split() == ["USR1", "1.0"]


# ---------------------------------------------------------------------------------------------------
# dependencies


def test_dependencies_ended_and_done(fake_lsf, tmp_path):
    gate = 'while [ ! -f go ]; do sleep 0.05; done; [ "$LSB_JOBINDEX" = 1 ]'
    arr = fake_lsf.submit("-J", "dep[1-2]", gate, cwd=tmp_path)
    ended = fake_lsf.submit("-w", f"ended({arr})", "python3 -c 'import time; print(time.time())' > ended.t",
                            cwd=tmp_path)
    done = fake_lsf.submit("-w", f"done({arr})", "touch done.t", cwd=tmp_path)
    by_name = fake_lsf.submit("-w", "ended(dep) && exit(\"dep[2]\")", "touch byname.t", cwd=tmp_path)
    time.sleep(0.3)
    assert fake_lsf.stat(ended) == "PEND"
    (tmp_path / "go").touch()
    jobs = fake_lsf.wait_all(timeout=15, ids=[arr, ended, by_name])
    assert fake_lsf.stats(arr) == {1: "DONE", 2: "EXIT"}
    last_end = max(el["finish"] for el in jobs[arr]["elements"].values())
    assert float((tmp_path / "ended.t").read_text()) >= last_end - 0.05
    assert (tmp_path / "byname.t").exists()
    time.sleep(0.3)
    el = fake_lsf.job(done)["elements"]["0"]
    assert el["stat"] == "PEND" and el["pend_reason"] == "Dependency condition invalid or never satisfied"
    res = fake_lsf.run("bjobs", "-o", "stat pend_reason", "-noheader", str(done))
    assert res.stdout.startswith("PEND Dependency condition invalid or never satisfied")
    assert not (tmp_path / "done.t").exists()
    assert fake_lsf.run("bkill", str(done)).stdout == f"Job <{done}> is being terminated\n"
    assert fake_lsf.stat(done) == "EXIT"  # killed while pending


# ---------------------------------------------------------------------------------------------------
# bkill, brequeue


def test_bkill_one_element_then_the_array(fake_lsf, tmp_path):
    jid = fake_lsf.submit("-J", "k[1-3]", "sleep 30", cwd=tmp_path)
    for i in (1, 2, 3):
        fake_lsf.wait_for(jid, "RUN", index=i)
    res = fake_lsf.run("bkill", f"{jid}[2]")
    assert (res.returncode, res.stdout) == (0, f"Job <{jid}[2]> is being terminated\n")
    fake_lsf.wait_for(jid, "EXIT", index=2)
    assert fake_lsf.stats(jid) == {1: "RUN", 2: "EXIT", 3: "RUN"}
    assert fake_lsf.job(jid)["elements"]["2"]["exit_code"] == 130  # SIGINT first, as LSF does
    res = fake_lsf.run("bkill", str(jid))
    assert res.stdout == f"Job <{jid}> is being terminated\n"
    fake_lsf.wait_all(timeout=10)
    assert set(fake_lsf.stats(jid).values()) == {"EXIT"}
    res = fake_lsf.run("bkill", str(jid))
    assert (res.returncode, res.stderr) == (255, f"Job <{jid}>: Job has already finished\n")
    res = fake_lsf.run("bkill", "99999")
    assert res.stderr == "Job <99999>: No matching job found\n"
    res = fake_lsf.run("bjobs", "-o", "exit_reason", "-noheader", f"{jid}[2]")
    assert res.stdout.strip() == "TERM_OWNER: job killed by owner"


def test_bkill_signal(fake_lsf, tmp_path):
    jid = fake_lsf.submit("trap 'touch got_usr1; exit 0' USR1; touch up; sleep 30 & wait", cwd=tmp_path)
    while not (tmp_path / "up").exists():
        time.sleep(0.05)
    res = fake_lsf.run("bkill", "-s", "USR1", str(jid))
    assert res.stdout == f"Job <{jid}> is being signaled\n"
    fake_lsf.wait_all(timeout=10)
    assert (tmp_path / "got_usr1").exists() and fake_lsf.stat(jid) == "DONE"


def test_brequeue_from_inside_the_job_reruns_with_same_id(fake_lsf, tmp_path):
    script = (
        "#BSUB -o rq_%J_%I.out\n"
        "echo run $LSB_JOBID $LSB_JOBINDEX >> runs.$LSB_JOBINDEX\n"
        "if [ ! -f marker.$LSB_JOBINDEX ]; then\n"
        "  touch marker.$LSB_JOBINDEX\n"
        "  if [ \"$LSB_JOBINDEX\" = 0 ]; then brequeue $LSB_JOBID; "
        "else brequeue \"$LSB_JOBID[$LSB_JOBINDEX]\"; fi\n"
        "  sleep 30\n"
        "fi\n"
        "echo finished\n"
    )
    single = fake_lsf.submit(script=script, cwd=tmp_path)
    arr = fake_lsf.submit("-J", "rq[2-3]", script=script, cwd=tmp_path / ".." / tmp_path.name)
    fake_lsf.wait_all(timeout=20)
    assert fake_lsf.stat(single) == "DONE" and fake_lsf.stats(arr) == {2: "DONE", 3: "DONE"}
    assert (tmp_path / "runs.0").read_text() == f"run {single} 0\nrun {single} 0\n"
    assert (tmp_path / "runs.2").read_text() == f"run {arr} 2\nrun {arr} 2\n"
    assert fake_lsf.job(single)["elements"]["0"]["runs"] == 1
    text = (tmp_path / f"rq_{single}_0.out").read_text()
    assert text.count("Sender: LSF System") == 2
    assert "TERM_REQUEUE_OWNER: job killed and requeued by owner." in text
    assert text.rstrip().endswith("finished")
    brq = [c for c in fake_lsf.calls("brequeue")]
    assert sorted(c["argv"][0] for c in brq) == sorted([str(single), f"{arr}[2]", f"{arr}[3]"])


def test_brequeue_finished_job_needs_flag(fake_lsf, tmp_path):
    jid = fake_lsf.submit("echo x >> count", cwd=tmp_path)
    fake_lsf.wait_all(timeout=10)
    res = fake_lsf.run("brequeue", str(jid))
    assert res.returncode == 255 and "Job has already finished" in res.stderr
    res = fake_lsf.run("brequeue", "-d", str(jid))
    assert res.stdout == f"Job <{jid}> is being requeued\n"
    fake_lsf.wait_all(timeout=10)
    assert (tmp_path / "count").read_text() == "x\nx\n"


# ---------------------------------------------------------------------------------------------------
# bjobs output forms


def test_bjobs_output_forms(fake_lsf, tmp_path):
    assert fake_lsf.run("bjobs").stderr == "No unfinished job found\n"
    assert fake_lsf.run("bjobs", "-a").stderr == "No job found\n"
    jid = fake_lsf.submit("-J", "a_rather_long_name[1-2]", "-q", "gpua100", "sleep 30", cwd=tmp_path)
    for i in (1, 2):
        fake_lsf.wait_for(jid, "RUN", index=i)

    lines = fake_lsf.run("bjobs").stdout.splitlines()
    assert lines[0] == "JOBID   USER    STAT  QUEUE      FROM_HOST   EXEC_HOST   JOB_NAME   SUBMIT_TIME"
    assert lines[1].startswith(f"{jid:<7} ") and lines[1][16:22] == "RUN   "
    assert lines[1][22:33] == "gpua100    "
    assert lines[1][57:68] == "*g_name[1] "  # JOB_NAME is cut to 10 columns with a leading '*'
    wide = fake_lsf.run("bjobs", "-w").stdout.splitlines()
    assert [ln.split()[6] for ln in wide[1:]] == ["a_rather_long_name[1]", "a_rather_long_name[2]"]
    assert fake_lsf.run("bjobs", "-noheader", "-w").stdout.splitlines() == wide[1:]

    res = fake_lsf.run("bjobs", "-o", "jobid stat job_name jobindex exit_code delimiter='^'", str(jid))
    assert res.stdout.splitlines() == ["JOBID^STAT^JOB_NAME^JOBINDEX^EXIT_CODE",
                                       f"{jid}^RUN^a_rather_long_name[1]^1^-",
                                       f"{jid}^RUN^a_rather_long_name[2]^2^-"]
    res = fake_lsf.run("bjobs", "-o", "jobid stat job_name jobindex exit_code", "-json", str(jid), "77777")
    doc = json.loads(res.stdout)
    assert res.returncode == 255 and doc["COMMAND"] == "bjobs" and doc["JOBS"] == 3
    assert doc["RECORDS"][0] == {"JOBID": str(jid), "STAT": "RUN", "JOB_NAME": "a_rather_long_name[1]",
                                 "JOBINDEX": "1", "EXIT_CODE": ""}
    assert doc["RECORDS"][2] == {"ERROR": "Job <77777> is not found"}
    assert '  "COMMAND":"bjobs",\n  "JOBS":3,\n  "RECORDS":[\n    {\n      "JOBID"' in res.stdout

    res = fake_lsf.run("bjobs", f"{jid}[2]", "4242")
    assert res.returncode == 255 and res.stderr == "Job <4242> is not found\n"
    assert len(res.stdout.splitlines()) == 2 and "a_rather*" not in res.stdout
    fake_lsf.setenv("LSB_BJOBS_DISPLAY_ENH", "Y")
    assert fake_lsf.run("bjobs", "-noheader", "-o", "jobid", str(jid)).stdout.split() == [
        f"{jid}[1]", f"{jid}[2]"]
    fake_lsf.delenv("LSB_BJOBS_DISPLAY_ENH")

    fake_lsf.run("bkill", str(jid))
    fake_lsf.wait_all(timeout=10)
    res = fake_lsf.run("bjobs", "-o", "jobid stat exit_code", "-json", "-a")
    assert [(r["STAT"], r["EXIT_CODE"]) for r in json.loads(res.stdout)["RECORDS"]] == [("EXIT", "130")] * 2
    assert fake_lsf.run("bjobs", "-o", "bogus").returncode == 255


# ---------------------------------------------------------------------------------------------------
# dialects, failures, forgetting, calls


def test_openlava_dialect_rejects_newer_features(fake_lsf, tmp_path):
    fake_lsf.set_dialect("openlava")
    for args in (["-gpu", "num=1:mode=exclusive_process"], ["-wa", "USR2", "-wt", "2"], ["-wt", "2"],
                 ["-env", "all"], ["-R", "rusage[mem=1000]", "-R", "span[hosts=1]"],
                 ["-R", "rusage[mem=16GB]"], ["-M", "16GB"]):
        res = fake_lsf.run("bsub", *args, "true")
        assert res.returncode == 255 and res.stderr, args
    res = fake_lsf.run("bsub", input="#BSUB -R rusage[mem=1]\n#BSUB -R span[hosts=1]\ntrue\n")
    assert res.returncode == 255
    assert fake_lsf.jobs() == {}  # nothing was submitted

    jid = fake_lsf.submit("-J", "ol[1-2]", "-R", "rusage[mem=1000] span[hosts=1]", "sleep 30", cwd=tmp_path)
    for args in (["-noheader"], ["-o", "jobid stat"], ["-o", "jobid", "-json"]):
        res = fake_lsf.run("bjobs", *args)
        assert res.returncode == 255 and "illegal option" in res.stderr and res.stdout == "", args
    fake_lsf.wait_for(jid, ("RUN", "PEND"), index=2)
    lines = fake_lsf.run("bjobs", "-w").stdout.splitlines()
    assert lines[0].startswith("JOBID   USER    STAT")
    assert [ln.split()[0] for ln in lines[1:]] == [str(jid)] * 2
    assert [ln.split()[6] for ln in lines[1:]] == ["ol[1]", "ol[2]"]

    fake_lsf.set_dialect("lsf10")
    assert fake_lsf.run("bsub", "-gpu", "num=1", "-wa", "USR2", "-wt", "1", "-W", "5", "true").returncode == 0


def test_transient_bjobs_failures(fake_lsf, tmp_path):
    jid = fake_lsf.submit("true", cwd=tmp_path)
    fake_lsf.setenv("FAKE_LSF_BJOBS_FAIL", "2")
    results = [fake_lsf.run("bjobs", "-a", str(jid)) for _ in range(3)]
    assert [r.returncode for r in results] == [255, 255, 0]
    assert "LSF is processing your request. Please wait ..." in results[0].stderr
    fake_lsf.fail_next("bjobs", 1)
    assert fake_lsf.run("bjobs", "-a").returncode == 255
    assert fake_lsf.run("bjobs", "-a").returncode == 0
    assert len(fake_lsf.calls("bjobs")) == 5 and len(fake_lsf.calls("bsub")) == 1
    fake_lsf.wait_all(timeout=10)


def test_finished_jobs_are_forgotten(fake_lsf, tmp_path):
    fake_lsf.setenv("FAKE_LSF_FORGET_AFTER", "3")  # seconds: wide enough for a loaded machine's bjobs call
    jid = fake_lsf.submit("true", cwd=tmp_path)
    fake_lsf.wait_all(timeout=10)
    assert fake_lsf.run("bjobs", str(jid)).stdout.splitlines()[1].split()[2] == "DONE"
    time.sleep(3.2)
    res = fake_lsf.run("bjobs", str(jid))
    assert (res.returncode, res.stderr) == (255, f"Job <{jid}> is not found\n")
    assert fake_lsf.run("bjobs", "-a").stderr == "No job found\n"
    # dependencies still see it (mbatchd keeps the record)
    dep = fake_lsf.submit("-w", f"done({jid})", "true", cwd=tmp_path)
    fake_lsf.wait_all(timeout=10)
    assert fake_lsf.stat(dep) == "DONE"
