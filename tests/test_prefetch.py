"""``pipeline.models.prefetch.prefetch``: cached models need no network; offline gives one clear line."""

from __future__ import annotations

import subprocess
import sys

import pytest

from pipeline.errors import ModelError
from pipeline.models.prefetch import prefetch


def fake_cache(root, repo="models--acme--bert-mini", commit="0" * 40):
    snap = root / repo / "snapshots" / commit
    snap.mkdir(parents=True)
    (snap / "config.json").write_text('{"model_type": "bert"}')
    (snap / "model.safetensors").write_bytes(b"weights")
    (root / repo / "refs").mkdir()
    (root / repo / "refs" / "main").write_text(commit)
    return snap


def test_a_cached_model_is_found_without_network(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    snap = fake_cache(tmp_path)
    assert prefetch("acme/bert-mini", str(tmp_path)) == str(snap)


def test_missing_model_with_hf_hub_offline_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelError) as e:
        prefetch("bert-base-uncased", str(tmp_path))
    assert "HF_HUB_OFFLINE=1" in str(e.value) and "\n" not in str(e.value)


def test_no_network_is_one_line(tmp_path):
    code = (
        "from pipeline.models.prefetch import prefetch\n"
        "from pipeline.errors import ModelError\n"
        f"try:\n    prefetch('bert-base-uncased', {str(tmp_path)!r})\n"
        "except ModelError as e:\n    print(e)\n"
    )
    env = {"HF_HUB_OFFLINE": "0", "HF_ENDPOINT": "http://127.0.0.1:9", "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    out = r.stdout.strip()
    assert out.startswith("could not download 'bert-base-uncased'") and "offline?" in out and "\n" not in out
