"""The real pretrained MiniLM (offline, from PyPI) fine-tuned on real BBC news: about a minute on 2 cores."""

from __future__ import annotations

import pytest

from tests.conftest import read_json, run_py


@pytest.mark.slow
def test_minilm_learns_bbc_topics(tmp_path, shared_data):
    run_dir = tmp_path / "run"
    r = run_py(tmp_path, "model=minilm", "data.max_rows=500", "trainer.max_length=128", "trainer.epochs=1",
               "trainer.lr=1e-4", "trainer.batch_size=16", f"hydra.run.dir={run_dir}", timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    m = read_json(run_dir / "metrics.json")
    assert m["status"] == "completed"
    assert m["test"]["accuracy"] >= 0.85, m["test"]  # a pretrained encoder: far above the 0.2 chance level
    assert "val  " in r.stdout and "test " in r.stdout
