"""The DVC data pipeline (dvc.yaml + pipeline/data/prepare.py) with real dvc and git, in a temp copy of the repo.

The copy holds what `dvc repro` and `python run.py` need (dvc.yaml, .dvc/, configs/, pipeline/, run.py,
hydra_plugins/); the shared data folder is the fetch stage's mirror and a temp folder is the DVC remote.
In the copy, configs/data/bbc_news.yaml asks for max_rows: 200 so that a tiny training run (TINY) has the
same data settings as the prepared split.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, SHARED_DATA, TINY

pytestmark = pytest.mark.slow

REPO_FILES = ["dvc.yaml", ".dvcignore", ".gitignore", "run.py", "data/.gitignore", ".dvc/config",
              ".dvc/.gitignore"]
REPO_DIRS = ["pipeline", "configs", "hydra_plugins"]
SPLIT_FILES = ["train.parquet", "val.parquet", "test.parquet", "labels.json", "stats.json"]
GIT = ["git", "-c", "user.email=test@example.com", "-c", "user.name=test"]


def env_for(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PYTEST_", "FAKE_LSF", "PIPELINE_", "DVC_", "WANDB_"))}
    # dvc.yaml's stages run ``python``: make that this interpreter (the venv), not whatever PATH finds first
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env.update({"HF_HUB_OFFLINE": "1", "DVC_NO_ANALYTICS": "1", "OMP_NUM_THREADS": "1",
                "PYTHONUNBUFFERED": "1", "GIT_CONFIG_NOSYSTEM": "1"})
    env.update(extra)
    return env


def sh(cwd: Path, *argv: str, env: dict[str, str] | None = None, check: bool = True, timeout: float = 300
       ) -> subprocess.CompletedProcess:
    r = subprocess.run(list(argv), cwd=cwd, env=env or env_for(), capture_output=True, text=True, timeout=timeout)
    if check:
        assert r.returncode == 0, f"{' '.join(argv)} exited {r.returncode}:\n{r.stdout}\n{r.stderr}"
    return r


def dvc(cwd: Path, *args: str, mirror: Path | None = SHARED_DATA, check: bool = True) -> subprocess.CompletedProcess:
    extra = {"PIPELINE_DATA_MIRROR": str(mirror)} if mirror else {}
    return sh(cwd, sys.executable, "-m", "dvc", *args, env=env_for(**extra), check=check)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def tree_hashes(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): sha256(p) for p in sorted((root / "data").rglob("*"))
            if p.is_file() and p.name != ".gitignore"}


def set_key(repo: Path, dataset: str, key: str, value: str) -> None:
    path = repo / "configs" / "data" / f"{dataset}.yaml"
    lines = path.read_text().splitlines()
    hits = [i for i, line in enumerate(lines) if line.startswith(f"{key}:")]
    assert len(hits) == 1, f"{path} has no single '{key}:' line"
    lines[hits[0]] = f"{key}: {value}"
    path.write_text("\n".join(lines) + "\n")


def job_cfg(repo: Path, data_dir: Path, **data_over):
    """The config a training job in ``repo`` sees for bbc_news (plain, so tests may add keys)."""
    from omegaconf import OmegaConf

    from pipeline.config import Config

    cfg = OmegaConf.create(OmegaConf.to_container(OmegaConf.structured(Config)))
    cfg.data = OmegaConf.load(repo / "configs" / "data" / "bbc_news.yaml")
    cfg.paths.data_dir = str(data_dir)
    cfg.data.update(data_over)
    return cfg


def ran(result: subprocess.CompletedProcess) -> list[str]:
    """The stages a `dvc repro` ran (or restored from the run cache)."""
    out = result.stdout + result.stderr
    return sorted({line.split("'")[1] for line in out.splitlines()
                   if line.startswith(("Running stage '", "Stage '")) and "didn't change" not in line})


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    if not (SHARED_DATA / "bbc_news.csv.gz").is_file():
        pytest.skip(f"shared data not found at {SHARED_DATA}: set PIPELINE_DATA_DIR")
    base = tmp_path_factory.mktemp("dvc")
    repo = base / "repo"
    repo.mkdir()
    for name in REPO_FILES:
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, repo / name)
    for name in REPO_DIRS:
        shutil.copytree(ROOT / name, repo / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    (repo / "configs" / "local" / "default.yaml").unlink(missing_ok=True)  # machine-specific, git-ignored
    set_key(repo, "bbc_news", "max_rows", "200")
    sh(repo, "git", "init", "-q")
    sh(repo, *GIT, "add", "-A")
    sh(repo, *GIT, "commit", "-qm", "project")
    dvc(repo, "remote", "modify", "--local", "work3", "url", str(base / "store"))
    r = dvc(repo, "repro")
    assert ran(r) == ["fetch@bbc_news", "fetch@fake_news", "prepare@bbc_news", "prepare@fake_news"], r.stdout
    sh(repo, *GIT, "add", "-A")  # dvc.lock and the .gitignore files dvc wrote
    sh(repo, *GIT, "commit", "-qm", "data")
    return repo


def test_repro_makes_the_splits_with_the_training_code(repo):
    import pandas as pd

    from pipeline.data import data

    out = repo / "data" / "processed" / "bbc_news"
    assert sorted(p.name for p in out.iterdir()) == sorted(SPLIT_FILES)
    assert sha256(repo / "data" / "raw" / "bbc_news.csv.gz") == sha256(SHARED_DATA / "bbc_news.csv.gz")
    labels = json.loads((out / "labels.json").read_text())
    assert labels["labels"] == ["business", "entertainment", "politics", "sport", "tech"]
    assert labels["data_sha256"] == sha256(SHARED_DATA / "bbc_news.csv.gz")
    assert labels["params"]["split_seed"] == 42 and labels["params"]["max_rows"] == 200
    assert labels["params"]["dedup_columns"] == ["text"] and labels["params"]["file"] == "bbc_news.csv.gz"
    stats = json.loads((out / "stats.json").read_text())
    frames = {s: pd.read_parquet(out / f"{s}.parquet") for s in data.SPLITS}
    for s, f in frames.items():
        assert list(f.columns) == ["text", "label"] and stats[s] == len(f)
        assert stats["labels"][s] == f.label.value_counts().sort_index().to_dict()
        lengths = stats["token_lengths"][s]
        assert 0 < lengths["p50"] <= lengths["p90"] <= lengths["p95"] <= lengths["p99"] <= lengths["max"]
        assert 0 <= lengths["over_512"] <= lengths["over_256"] <= lengths["over_128"] <= 1
    assert stats["rows_raw"] == 2225 and stats["dropped_duplicates"] >= 133
    assert stats["token_lengths"]["tokenizer"] == "minilm tokenizer"  # the default config's model

    # the very split a training job makes from the raw file with the same settings
    raw = data.load_splits(job_cfg(repo, SHARED_DATA, use_prepared=False))
    for s, f in frames.items():
        assert f.equals(raw.frame(s))
    assert (repo / "data" / "processed" / "fake_news" / "labels.json").is_file()


def test_second_repro_does_nothing(repo):
    before = {p: p.stat().st_mtime_ns for p in (repo / "data").rglob("*") if p.is_file()}
    r = dvc(repo, "repro")
    assert ran(r) == [] and "Data and pipelines are up to date" in r.stdout
    assert {p: p.stat().st_mtime_ns for p in (repo / "data").rglob("*") if p.is_file()} == before
    assert "up to date" in dvc(repo, "status").stdout


def test_changing_the_split_seed_reruns_prepare_only(repo):
    before = tree_hashes(repo)
    set_key(repo, "bbc_news", "split_seed", "7")
    try:
        r = dvc(repo, "repro")
        assert ran(r) == ["prepare@bbc_news"]
        after = tree_hashes(repo)
        changed = sorted(k for k in before if before[k] != after[k])
        assert "data/processed/bbc_news/train.parquet" in changed
        assert not [k for k in changed if not k.startswith("data/processed/bbc_news/")]
        assert json.loads((repo / "data/processed/bbc_news/labels.json").read_text())["params"]["split_seed"] == 7
    finally:
        set_key(repo, "bbc_news", "split_seed", "42")
    r = dvc(repo, "repro")  # back to the committed settings: restored from the run cache
    assert ran(r) == ["prepare@bbc_news"]
    assert tree_hashes(repo) == before
    assert sh(repo, "git", "status", "--porcelain").stdout == ""


def test_push_then_pull_into_a_clean_clone_restores_identical_files(repo, tmp_path):
    dvc(repo, "push")
    clone = tmp_path / "clone"
    sh(tmp_path, "git", "clone", "-q", str(repo), str(clone))
    assert not (clone / "data" / "raw").exists()
    dvc(clone, "remote", "modify", "--local", "work3", "url", str(repo.parent / "store"))
    dvc(clone, "pull", mirror=None)
    assert tree_hashes(clone) == tree_hashes(repo) and len(tree_hashes(clone)) == 12
    assert "up to date" in dvc(clone, "status", mirror=None).stdout


def test_offline_fetch_without_a_mirror_fails_in_one_line(repo, tmp_path):
    clone = tmp_path / "clone"
    sh(tmp_path, "git", "clone", "-q", str(repo), str(clone))
    cmd = [sys.executable, "-m", "pipeline.data.prepare", "fetch", "data=bbc_news"]
    for extra, says in (([], "PIPELINE_DATA_MIRROR is not set"),
                        (["data.url=http://127.0.0.1:9/bbc_news.csv.gz"], "could not download")):
        r = sh(clone, *cmd, *extra, check=False)
        assert r.returncode == 2
        assert len(r.stderr.strip().splitlines()) == 1 and r.stderr.startswith("error: "), r.stderr
        assert says in r.stderr and "PIPELINE_DATA_MIRROR=" in r.stderr
    r = dvc(clone, "repro", "fetch@bbc_news", mirror=None, check=False)
    assert r.returncode != 0 and "PIPELINE_DATA_MIRROR is not set" in r.stderr
    assert not (clone / "data" / "raw" / "bbc_news.csv.gz").exists()


def test_wrong_checksum_mirror_is_refused_and_raw_untouched(repo, tmp_path):
    bad = tmp_path / "mirror"
    bad.mkdir()
    good = (SHARED_DATA / "bbc_news.csv.gz").read_bytes()
    (bad / "bbc_news.csv.gz").write_bytes(good[:-8] + b"tampered")
    raw = repo / "data" / "raw"
    before = {p.name: (sha256(p), p.stat().st_ino, p.stat().st_mtime_ns) for p in raw.iterdir()}
    r = dvc(repo, "repro", "-f", "fetch@bbc_news", mirror=bad, check=False)
    assert r.returncode != 0
    assert "refusing" in r.stderr and "data/raw/bbc_news.csv.gz left as it was" in r.stderr
    assert {p.name: (sha256(p), p.stat().st_ino, p.stat().st_mtime_ns) for p in raw.iterdir()} == before
    direct = sh(repo, sys.executable, "-m", "pipeline.data.prepare", "fetch", "data=bbc_news",
                env=env_for(PIPELINE_DATA_MIRROR=str(bad)), check=False)
    assert direct.returncode == 2 and len(direct.stderr.strip().splitlines()) == 1
    assert {p.name: (sha256(p), p.stat().st_ino, p.stat().st_mtime_ns) for p in raw.iterdir()} == before
    assert "up to date" in dvc(repo, "status").stdout


def test_training_reads_the_prepared_splits(repo, tmp_path):
    run_dir = tmp_path / "run"
    env = env_for(PIPELINE_OUTPUT_ROOT=str(tmp_path / "outputs"))
    r = sh(repo, sys.executable, "run.py", *TINY, "trainer.epochs=1", f"hydra.run.dir={run_dir}", env=env)
    log = (run_dir / "run.log").read_text()
    assert "data from prepared splits data/processed/bbc_news" in log, log
    prepared = repo / "data" / "processed" / "bbc_news"
    labels = json.loads((prepared / "labels.json").read_text())
    assert json.loads((run_dir / "run_info.json").read_text())["data_sha256"] == labels["data_sha256"]
    stats = json.loads((prepared / "stats.json").read_text())
    m = json.loads((run_dir / "metrics.json").read_text())
    assert m["status"] == "completed", r.stderr
    assert (m["train_size"], m["val_size"], m["test_size"]) == (stats["train"], stats["val"], stats["test"])


def test_other_data_settings_warn_and_use_the_raw_file(repo, caplog, monkeypatch):
    from pipeline.data import data

    monkeypatch.setenv("PIPELINE_PROCESSED_DIR", str(repo / "data" / "processed"))
    cfg = job_cfg(repo, repo / "data" / "raw")
    with caplog.at_level("INFO", logger="pipeline.data.data"):
        data.load_splits(cfg)
    assert "data from prepared splits" in caplog.text
    caplog.clear()
    cfg.data.split_seed = 3
    with caplog.at_level("INFO", logger="pipeline.data.data"):
        s = data.load_splits(cfg)
    assert "made with other data settings: split_seed=42 (job: 3)" in caplog.text
    assert "data from prepared splits" not in caplog.text and s.stats["train"] == len(s.train)


def test_label_missing_from_labels_json_is_one_line_error(repo, tmp_path, monkeypatch):
    from pipeline.data import data
    from pipeline.errors import DataError

    copy = tmp_path / "processed" / "bbc_news"
    shutil.copytree(repo / "data" / "processed" / "bbc_news", copy)
    meta = json.loads((copy / "labels.json").read_text())
    meta["labels"].remove("tech")
    (copy / "labels.json").write_text(json.dumps(meta))
    monkeypatch.setenv("PIPELINE_PROCESSED_DIR", str(tmp_path / "processed"))
    cfg = job_cfg(repo, repo / "data" / "raw")
    with pytest.raises(DataError) as e:
        data.load_splits(cfg)
    assert "labels ['tech'] not in labels.json" in str(e.value) and "\n" not in str(e.value)
