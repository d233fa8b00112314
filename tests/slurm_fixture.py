"""Pytest fixtures for tests that need a real Slurm cluster (see ``.ci/slurm-up.sh`` and docs/slurm-ci.md).

``tests/conftest.py`` loads this module as a pytest plugin (``pytest_plugins``), so every test can ask for
its fixtures; using one puts the test in the full tier (mark ``slurm``, tests/tiers.py).

``slurm_cluster`` (session scope) skips the test when no cluster answers; it returns a :class:`SlurmCluster`
whose :meth:`SlurmCluster.executor` builds a real ``submitit.AutoExecutor(cluster="slurm")`` on the right
partition.  ``submitit_folder`` (function scope) is a writable folder that the jobs can see too.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

SKIP_REASON = "no Slurm cluster reachable: run `bash .ci/slurm-up.sh` (needs root + apt)"
# Environment overrides, e.g. to point the tests at a real multi-node cluster:
PARTITION_ENV = "PIPELINE_SLURM_PARTITION"  # partition to submit to (default: the cluster's default one)
SHARED_DIR_ENV = "PIPELINE_SLURM_SHARED_DIR"  # folder visible from every node (default: pytest's tmp_path)

_USABLE_NODE_STATES = ("idle", "mixed", "allocated", "completing")


@dataclass(frozen=True)
class SlurmCluster:
    """What the tests need to know about the reachable cluster."""

    partition: str
    nodes: tuple[str, ...]

    def executor(self, folder: str | os.PathLike[str], **parameters: Any):
        """A real ``submitit.AutoExecutor(folder, cluster="slurm")`` on :attr:`partition`.

        Small defaults suited to the test cluster (1 CPU, 2 GB, 5 minutes); ``parameters`` override them and
        go to ``update_parameters`` (e.g. ``timeout_min=1, slurm_signal_delay_s=50``).
        """
        import submitit

        executor = submitit.AutoExecutor(folder=folder, cluster="slurm")
        defaults: dict[str, Any] = {
            "slurm_partition": self.partition,
            "timeout_min": 5,
            "cpus_per_task": 1,
            "mem_gb": 2,
            "nodes": 1,
            "tasks_per_node": 1,
        }
        defaults.update(parameters)
        executor.update_parameters(**defaults)
        return executor


def _run(cmd: list[str], timeout: float = 5.0) -> subprocess.CompletedProcess[str] | None:
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None


def probe_slurm(timeout: float = 5.0) -> SlurmCluster | str:
    """A :class:`SlurmCluster` if sinfo/sbatch/sacct answer and a node is usable, else why not (a string)."""
    for tool in ("sinfo", "sbatch", "scancel", "sacct"):
        if shutil.which(tool) is None:
            return f"{tool} is not on PATH"
    # %P partition ("debug*" for the default one), %a availability, %T node state, %N node names
    proc = _run(["sinfo", "-h", "-o", "%P|%a|%T|%N"], timeout=timeout)
    if proc is None:
        return f"sinfo did not answer within {timeout:.0f} s"
    if proc.returncode != 0:
        return f"sinfo failed: {(proc.stderr or proc.stdout).strip()[:300]}"
    rows = [line.split("|") for line in proc.stdout.splitlines() if line.count("|") == 3]
    usable = [r for r in rows if r[1] == "up" and r[2].rstrip("~#!%$@^-").lower() in _USABLE_NODE_STATES]
    if not usable:
        return f"no partition with an idle/mixed/allocated node (sinfo: {proc.stdout.strip()[:300]!r})"
    wanted = os.environ.get(PARTITION_ENV)
    if wanted:
        chosen = [r for r in usable if r[0].rstrip("*") == wanted]
        if not chosen:
            return f"partition {wanted!r} (from ${PARTITION_ENV}) has no usable node"
    else:
        chosen = [r for r in usable if r[0].endswith("*")] or usable
    partition = chosen[0][0].rstrip("*")
    acct = _run(["sacct", "-n", "-X", "-P", "-j", "1", "-o", "JobID"], timeout=timeout)
    if acct is None or acct.returncode != 0:
        detail = "timed out" if acct is None else (acct.stderr or acct.stdout).strip()[:300]
        return f"sacct does not work (submitit needs it to follow jobs): {detail}"
    nodes = tuple(sorted({r[3] for r in chosen if r[0].rstrip("*") == partition}))
    return SlurmCluster(partition=partition, nodes=nodes)


@pytest.fixture(scope="session")
def slurm_cluster() -> SlurmCluster:
    """The reachable Slurm cluster; skips the test (with how to start one) when there is none."""
    found = probe_slurm()
    if isinstance(found, str):
        pytest.skip(f"{SKIP_REASON} ({found})")
    return found


def shared_folder(base: str | os.PathLike[str], name: str = "submitit") -> Path:
    """A fresh writable folder for submitit logs/pickles that the jobs can read and write.

    On the one-node CI cluster any local folder works, so ``base`` (normally pytest's ``tmp_path``) is
    used; set ``$PIPELINE_SLURM_SHARED_DIR`` to a shared filesystem path when testing a multi-node cluster.
    """
    root = os.environ.get(SHARED_DIR_ENV)
    if root:
        folder = Path(root) / f"{name}-{os.getpid()}-{time.time_ns()}"
    else:
        folder = Path(base) / name
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture
def submitit_folder(slurm_cluster: SlurmCluster, tmp_path: Path) -> Path:
    """Per-test writable folder for ``submitit.AutoExecutor(folder=...)`` (skips without a cluster)."""
    return shared_folder(tmp_path)
