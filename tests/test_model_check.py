"""A model the jobs could not load is refused at submission, like bad data (issue 22, item 7).

``model.download=false`` (the default): a hub id must be in HF_HOME's cache; ``true``: refused only when
HF_HUB_OFFLINE is set or the hub does not answer. Each case is a real ``run.py`` on an empty HF_HOME.
"""

from __future__ import annotations

from pathlib import Path

from tests.conftest import run_py, train_env

DRY_LSF = ("-m", "cluster=lsf", "hydra.launcher.dry_run=true")
SNAPSHOT = "0123456789abcdef0123456789abcdef01234567"


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    return train_env(tmp_path, HF_HOME=str(tmp_path / "hf"), **extra)


def _error(r) -> str:
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(lines) == 1, r.stdout[-2000:] + r.stderr[-2000:]
    assert lines[0].startswith("error: ")
    return lines[0]


def test_an_uncached_hub_id_is_refused_before_a_single_run(tmp_path):
    r = run_py(tmp_path, "model.path=distilbert-base-uncased", f"hydra.run.dir={tmp_path / 'run'}",
               env=_env(tmp_path))
    line = _error(r)
    assert "'distilbert-base-uncased' is a Hugging Face hub id that is not in the cache" in line
    assert str(tmp_path / "hf" / "hub") in line
    assert "`pipeline prefetch distilbert-base-uncased`" in line and "model.download=true" in line
    assert not (tmp_path / "run").exists()


def test_an_uncached_swept_model_is_refused_before_submission(tmp_path):
    sweep = tmp_path / "sweep"
    r = run_py(tmp_path, *DRY_LSF, "model=bert_base,tiny", f"hydra.sweep.dir={sweep}", env=_env(tmp_path))
    line = _error(r)
    assert "`pipeline prefetch bert-base-uncased`" in line and line.endswith("(jobs with model=bert_base)")
    r = run_py(tmp_path, *DRY_LSF, "model.path=no-such-model-a,no-such-model-b", f"hydra.sweep.dir={sweep}",
               env=_env(tmp_path))
    line = _error(r)
    assert "`pipeline prefetch no-such-model-a`" in line and line.endswith("(jobs with model.path=no-such-model-a)")
    assert "DRYRUN" not in r.stdout and not sweep.exists()  # nothing written, nothing submitted


def test_model_download_is_refused_only_when_the_hub_is_off_or_unreachable(tmp_path):
    sweep = tmp_path / "sweep"
    args = (*DRY_LSF, "model.path=distilbert-base-uncased", "model.download=true", f"hydra.sweep.dir={sweep}")
    line = _error(run_py(tmp_path, *args, env=_env(tmp_path, HF_HUB_OFFLINE="1")))
    assert "model.download=true, but HF_HUB_OFFLINE is set here" in line
    line = _error(run_py(tmp_path, *args, env=_env(tmp_path, HF_HUB_OFFLINE="0", HF_ENDPOINT="http://127.0.0.1:9")))
    assert "the Hugging Face hub (http://127.0.0.1:9) cannot be reached from here" in line
    assert "`pipeline prefetch distilbert-base-uncased`" in line
    assert not sweep.exists()


def _cache(hf_home: Path, repo: str, folder: Path) -> None:
    """``repo`` in the Hugging Face cache layout (refs/main -> snapshots/<sha>/), its files from ``folder``."""
    entry = hf_home / "hub" / f"models--{repo.replace('/', '--')}"
    (entry / "refs").mkdir(parents=True)
    (entry / "refs" / "main").write_text(SNAPSHOT)
    snapshot = entry / "snapshots" / SNAPSHOT
    snapshot.mkdir(parents=True)
    for name in ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "vocab.txt"):
        (snapshot / name).symlink_to(folder / name)


def test_cached_hub_ids_local_folders_and_the_default_model_pass(tmp_path):
    from pipeline.models.model import offline_minilm_path

    minilm = Path(offline_minilm_path())
    _cache(tmp_path / "hf", "sentence-transformers/all-MiniLM-L6-v2", minilm)
    r = run_py(tmp_path, *DRY_LSF, f"model.path=sentence-transformers/all-MiniLM-L6-v2,{minilm}",
               f"hydra.sweep.dir={tmp_path / 'sweep'}", env=_env(tmp_path))  # the base config: default MiniLM
    assert r.returncode == 0, r.stderr[-3000:]
    assert "DRYRUN1 (2 jobs" in r.stdout
