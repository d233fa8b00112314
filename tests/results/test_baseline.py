"""TF-IDF + logistic-regression baseline: the core on real BBC news, the glue through pipeline.data.data."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pipeline.cli.cli import app
from pipeline.results import baseline as B
from tests.results.make_runs import write_run

DATA_DIR = Path(os.environ.get("PIPELINE_DATA_DIR") or Path(__file__).resolve().parents[3] / "shared" / "data")
BBC = DATA_DIR / "bbc_news.csv.gz"
needs_bbc = pytest.mark.skipif(not BBC.is_file(), reason=f"shared data not found at {BBC}")


@needs_bbc
def test_fit_baseline_on_bbc_news():
    import pandas as pd

    df = pd.read_csv(BBC).drop_duplicates("text").sample(n=1000, random_state=0).reset_index(drop=True)
    df = pd.DataFrame({"text": df.title + "\n" + df.text, "label": df.label})
    n = len(df)
    train, val, test = df[: int(0.8 * n)], df[int(0.8 * n): int(0.9 * n)], df[int(0.9 * n):]
    result = B.fit_baseline(train, val, test)
    assert result["C"] in B.C_GRID and result["sizes"] == {"train": len(train), "val": len(val), "test": len(test)}
    for split in ("val", "test"):
        assert result[split]["accuracy"] > 0.9  # BBC topics are easy for TF-IDF
        assert 0.9 < result[split]["macro_f1"] <= 1.0 and result[split]["loss"] > 0
    metrics = B.baseline_metrics(result)
    assert metrics["test_macro_f1"] == result["test"]["macro_f1"]


def data_config(max_rows: int = 300) -> dict:
    return {
        "seed": 0,
        "data": {"name": "bbc_news", "file": str(BBC), "format": "auto", "text_columns": ["title", "text"],
                 "label_column": "label", "encoding": "utf-8", "dedup": True, "dedup_columns": None,
                 "val_fraction": 0.1, "test_fraction": 0.1, "split_seed": 42, "max_rows": max_rows,
                 "use_prepared": False},
        "paths": {"data_dir": str(DATA_DIR), "cache_dir": "unused", "output_root": "unused"},
        "trainer": {"lr": 1e-4, "max_length": 128},
        "model": {"name": "tiny"},
    }


@needs_bbc
def test_baseline_for_run_uses_the_runs_split_and_caches(tmp_path):
    from omegaconf import OmegaConf

    from pipeline.data.data import load_splits

    run = write_run(tmp_path / "sweep" / "0", ["seed=0"], config=data_config())
    cache = tmp_path / "sweep" / "results"
    result = B.baseline_for_run(run, cache)
    splits = load_splits(OmegaConf.create(data_config()))
    assert result["sizes"] == {"train": len(splits.train), "val": len(splits.val), "test": len(splits.test)}
    assert result["dataset"] == "bbc_news" and result["test"]["accuracy"] > 0.7
    files = list(cache.glob("baseline-bbc_news-*.json"))
    assert len(files) == 1
    files[0].write_text(json.dumps({**result, "C": "from-cache"}))
    assert B.baseline_for_run(run, cache)["C"] == "from-cache"


@needs_bbc
def test_results_baseline_row(tmp_path):
    root = tmp_path / "sweep"
    for num, lr in enumerate(("1e-4", "2e-4")):
        write_run(root / str(num), [f"trainer.lr={lr}", "seed=0"], config=data_config())
    out = CliRunner().invoke(app, ["results", str(root), "--baseline", "-f", "json"])
    assert out.exit_code == 0, out.output
    rows = json.loads(out.stdout)["rows"]
    base = [r for r in rows if r["state"] == "baseline"]
    assert len(base) == 1 and base[0]["rank"] is None and not base[0]["best"]
    assert base[0]["val_macro_f1"] > 0.5 and base[0]["job"].startswith("tfidf+logreg (bbc_news, C=")
    table = CliRunner().invoke(app, ["results", str(root), "--baseline", "--by-seed"])
    assert "baseline" in table.stdout and "tfidf+logreg" in table.stdout
