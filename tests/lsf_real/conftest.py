"""The real LSF clone (volclava, ../shared/lsf-clone): its environment for the tests, or a skip saying why.

`.ci/run` brings it up (`bash ../shared/lsf-clone/build.sh`, ~1.5 min as root), as .ci/slurm-up.sh brings
Slurm. Tests marked ``lsf_real`` submit real ``bsub`` jobs that run as the submitting user (root works:
LSF_ROOT_REX=all), so their output folders (pytest's tmp_path) are writable by the jobs.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

PROFILE = Path(os.environ.get("LSF_CLONE_PROFILE", "/opt/volclava/etc/volclava.sh"))


def _clone_env() -> tuple[dict[str, str] | None, str]:
    """The environment after sourcing the clone's profile, or None and why it is not usable."""
    if not PROFILE.is_file():
        return None, f"LSF clone not installed ({PROFILE} missing): run bash ../shared/lsf-clone/build.sh as root"
    try:
        out = subprocess.run(["bash", "-c", f"set +u; . {PROFILE}; env -0"], capture_output=True, timeout=30,
                             check=True).stdout
    except (OSError, subprocess.SubprocessError) as e:
        return None, f"cannot source {PROFILE}: {e}"
    env = dict(item.split("=", 1) for item in out.decode().split("\0") if "=" in item)
    try:
        r = subprocess.run(["bhosts"], capture_output=True, text=True, env=env, timeout=30)
    except (OSError, subprocess.SubprocessError) as e:
        return None, f"bhosts failed: {e}"
    if r.returncode != 0 or " ok " not in f" {r.stdout} ":
        return None, f"LSF clone not running (bhosts: {(r.stderr or r.stdout).strip()[:200]}): " \
                     "bash ../shared/lsf-clone/build.sh --start"
    return env, ""


@pytest.fixture(scope="session")
def real_lsf() -> dict[str, str]:
    """PATH and LSF_* variables of the running clone (skips with the reason when it is not up)."""
    env, why = _clone_env()
    if env is None:
        pytest.skip(why)
    keep = {k: v for k, v in env.items() if k.startswith("LSF_") or k in ("PATH", "LD_LIBRARY_PATH")}
    return keep
