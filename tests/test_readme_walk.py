"""README.md's "From clone to result" walk, run command by command in the order it gives them.

The walk runs in a scratch "clone" (links to run.py, configs/, the package and .venv) so that its
``outputs/`` is private. Fast settings: ``make demo`` becomes the demo sweep itself with a tiny model and
few rows added, every ``python run.py`` gets the same settings, ``make test`` is skipped (it is this
suite), and the Python snippet loads the checkpoint that ``pipeline best`` printed.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from tests.conftest import ROOT, train_env

pytestmark = pytest.mark.slow

FAST = "model=tiny data.max_rows=200 trainer.max_length=64 trainer.batch_size=8"


def walk_blocks(readme: str) -> list[tuple[str, str]]:
    """``[(language, code), ...]`` of the fenced blocks between the walk markers, in order."""
    section = readme.split("<!-- walk:start", 1)[1].split("<!-- walk:end -->", 1)[0]
    return re.findall(r"```(\w+)\n(.*?)```", section, flags=re.S)


def to_script(blocks: list[tuple[str, str]], scratch: Path) -> tuple[str, list[str]]:
    """One bash script (and the commands it runs, for the assertions) from the walk's blocks."""
    lines, commands = ["set -euo pipefail"], []
    for n, (lang, code) in enumerate(blocks):
        if lang == "python":
            code = re.sub(r'^path = ".*"', 'import os\npath = os.environ["BEST"]', code, count=1, flags=re.M)
            (scratch / f"snippet{n}.py").write_text(code)
            lines += ['export BEST="$(pipeline best "$SWEEP")"', f"python snippet{n}.py"]
            commands.append(f"python snippet{n}.py")
            continue
        assert lang == "bash", lang
        for cmd in code.splitlines():
            cmd = cmd.strip()
            if not cmd or cmd.startswith(("git clone", "#")):
                continue
            commands.append(cmd)
            if cmd == "make demo":
                cmd = f".venv/bin/python run.py -m experiment=demo {FAST}"  # what make demo runs
            elif cmd == "make test":
                cmd = "echo make test skipped: it is this suite"
            elif cmd.startswith("python run.py"):
                cmd = f"{cmd} {FAST}"
            lines += [f"echo '+++ {commands[-1]}'", cmd]
    return "\n".join(lines) + "\n", commands


def test_readme_walk_runs_in_order(shared_data, tmp_path):
    blocks = walk_blocks((ROOT / "README.md").read_text())
    scratch = tmp_path / "clone"
    scratch.mkdir()
    for name in ("run.py", "configs", "pipeline", "hydra_plugins", ".venv"):
        (scratch / name).symlink_to(ROOT / name)
    script, commands = to_script(blocks, scratch)
    # the walk as the README gives it: demo, tests, activate, look, follow, compare, predict, load, own sweep
    order = ["make demo", "make test", "source .venv/bin/activate", "pipeline status", "pipeline watch",
             "pipeline results", "pipeline predict", "pipeline best", "python snippet", "python run.py -m"]
    at = [next(i for i, c in enumerate(commands) if c.startswith(o)) for o in order]
    assert at == sorted(at), commands
    env = train_env(tmp_path)
    env.pop("PIPELINE_OUTPUT_ROOT")  # outputs/ in the scratch clone, as for a user
    env["PATH"] = ":".join(p for p in env["PATH"].split(":") if ".venv" not in p)  # activate must do it
    res = subprocess.run(["bash", "-c", script], cwd=scratch, env=env, capture_output=True, text=True,
                         timeout=1800)
    assert res.returncode == 0, (res.stdout[-3000:], res.stderr[-3000:])
    out = res.stdout
    assert out.count("best by val_macro_f1") >= 3  # the demo's table, watch's table, the own sweep's table
    assert "finished: COMPLETED" in out  # watch's line per job
    sweeps = sorted((scratch / "outputs" / "multirun").iterdir())
    assert len(sweeps) == 2  # the demo and the own sweep
    assert (sweeps[0] / "results" / "runs.csv").is_file() and (sweeps[0] / "0" / "metrics.json").is_file()
    # the snippet printed a label of the dataset and a probability
    last = [ln for ln in out.splitlines() if re.fullmatch(r"\w+ 0\.\d+|\w+ 1\.0", ln.strip())]
    assert last and last[0].split()[0] in ("business", "entertainment", "politics", "sport", "tech"), out[-2000:]
