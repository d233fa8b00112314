"""The data report: drops per reason, its one-line warning and its error; ``pipeline data FILE``."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipeline.data import data_report, drops, tokens
from pipeline.errors import DataError
from tests.conftest import ROOT, run_py, train_env
from tests.test_user_data import cfg_for


def messy_fake_news(shared: Path, tmp: Path, empty: int) -> Path:
    """The fake-news file with ``empty`` rows whose text is blank (as a mangled CSV export leaves them)."""
    df = pd.read_csv(shared / "perez_rosas_fakenews.csv")
    df.loc[df.sample(n=empty, random_state=0).index, "text"] = "  "
    path = tmp / f"fake_{empty}.csv"
    df.to_csv(path, index=False)
    return path


def pipeline_cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pipeline.cli", *args], cwd=ROOT, env=train_env(tmp_path),
                          capture_output=True, text=True, timeout=300)


def test_report_counts_drops_per_reason_classes_and_tokens(tmp_path, shared_data):
    df = pd.read_csv(shared_data / "perez_rosas_fakenews.csv")
    df.loc[df.index[:5], "text"] = ""
    df.loc[df.index[5:8], "label"] = ""
    df = pd.concat([df, df.iloc[20:24]])  # 4 exact duplicates
    df.to_csv(tmp_path / "f.csv", index=False)
    cfg = cfg_for(tmp_path, shared_data, "fake_news", file=str(tmp_path / "f.csv"))
    cfg.trainer.max_length = 128
    report = data_report.for_config(cfg)
    assert report["rows_read"] == 984
    assert report["dropped"] == {"empty text": 5, "empty label": 3, "duplicate": 4}
    assert report["rows_used"] == 972 and sum(report["classes"].values()) == 972
    assert set(report["classes"]) == {"FAKE", "REAL"}
    tok = report["tokens"]
    # against the transformers tokenizer the model trains with (untruncated, with [CLS]/[SEP])
    from transformers import AutoTokenizer

    from pipeline.data.data import load_splits
    from pipeline.models.model import offline_minilm_path

    texts = pd.concat([load_splits(cfg).frame(s) for s in ("train", "val", "test")]).text.tolist()
    lengths = np.array([len(x) for x in AutoTokenizer.from_pretrained(offline_minilm_path())(texts)["input_ids"]])
    for p in tokens.PERCENTILES:  # one set of percentiles, as in the prepare stage's stats.json
        assert tok[f"p{p}"] == int(np.percentile(lengths, p))
    assert tok["truncated_share"] == pytest.approx(float((lengths > 128).mean()), abs=1e-4)


def test_drops_above_the_threshold_warn_in_one_line(tmp_path, shared_data):
    cfg = cfg_for(tmp_path, shared_data, "fake_news", file=str(messy_fake_news(shared_data, tmp_path, 150)))
    stats = {"rows_raw": 980, "dropped_empty_text": 150}
    line = drops.check_drops(stats, cfg.data, "x/fake_150.csv")
    assert line is not None and "\n" not in line
    assert "dropped 150 of 980 rows (15.3%: 150 empty text), above data.drop_warn_fraction=0.1" in line
    assert drops.check_drops({"rows_raw": 980, "dropped_empty_text": 50}, cfg.data, "x") is None


def test_dropping_more_than_half_is_an_error_unless_allowed(tmp_path, shared_data):
    file = messy_fake_news(shared_data, tmp_path, 900)
    cfg = cfg_for(tmp_path, shared_data, "fake_news", file=str(file))
    from pipeline.data.data import load_splits

    with pytest.raises(DataError, match=r"dropped 900 of 980 rows \(91.8%: 900 empty text\).*"
                                        r"data.drop_error_fraction=1"):
        load_splits(cfg)
    # end to end: exit 2 before any run directory is written
    run_dir = tmp_path / "run"
    r = run_py(tmp_path, "model=tiny", "data=fake_news", f"data.file={file}", f"hydra.run.dir={run_dir}")
    assert r.returncode == 2 and "error: cleaning" in r.stderr and "91.8%" in r.stderr
    assert not (run_dir / "metrics.json").exists()
    cfg.data.drop_error_fraction = 1.0  # the user says so: trains on the 80 rows left, with the warning
    assert 50 < len(load_splits(cfg).train) < 80


def test_pipeline_data_prints_the_report(tmp_path, shared_data):
    file = messy_fake_news(shared_data, tmp_path, 150)
    r = pipeline_cli(tmp_path, "data", str(file), "data=fake_news", "trainer.max_length=128")
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert "rows read     980" in out and "150 empty text (15.3%)" in out
    assert "FAKE" in out and "REAL" in out and "p50" in out and "longer than max_length 128" in out
    assert max(len(x) for x in out.splitlines() if not x.startswith("file")) <= 80
    warnings = [x for x in r.stderr.splitlines() if x.startswith("warning:")]
    assert len(warnings) == 1 and "dropped 150 of 980 rows" in warnings[0]
    j = pipeline_cli(tmp_path, "data", str(file), "data=fake_news", "--format", "json")
    assert json.loads(j.stdout)["dropped"] == {"empty text": 150}


def test_pipeline_data_reports_then_fails_when_training_would(tmp_path, shared_data):
    r = pipeline_cli(tmp_path, "data", str(messy_fake_news(shared_data, tmp_path, 900)), "data=fake_news")
    assert r.returncode == 2
    assert "900 empty text" in r.stdout  # the report is shown: that is when it is needed
    assert r.stderr.strip().splitlines()[-1].startswith("error: training would stop here: cleaning")


def test_pipeline_data_names_a_wrong_column_key(tmp_path, shared_data):
    r = pipeline_cli(tmp_path, "data", str(shared_data / "perez_rosas_fakenews.csv"), "data=csv",
                     "data.label_column=topic")
    assert r.returncode == 2
    assert r.stderr.strip() .startswith("error:") and "no column 'topic' (data.label_column)" in r.stderr
    assert "data.text_columns" not in r.stderr


def test_a_run_warns_about_drops_in_one_line_and_records_the_report(tmp_path, shared_data):
    file = messy_fake_news(shared_data, tmp_path, 150)
    run_dir = tmp_path / "run"
    r = run_py(tmp_path, "model=tiny", "data=fake_news", f"data.file={file}", "trainer.max_steps=2",
               "trainer.max_length=32", "trainer.batch_size=8", f"hydra.run.dir={run_dir}")
    assert r.returncode == 0, r.stderr[-2000:]
    said = [x for x in (r.stdout + r.stderr).splitlines() if "dropped 150 of 980 rows" in x]
    assert len(said) == 1 and "data.drop_warn_fraction=0.1" in said[0]  # once, at preflight
    report = json.loads((run_dir / "run_info.json").read_text())["data_report"]
    assert report["dropped"] == {"empty text": 150} and report["rows_used"] == 830


def test_jobs_read_the_report_that_preflight_measured(tmp_path, shared_data, monkeypatch):
    """A scheduler job is a fresh process: it reads the report from paths.cache_dir instead of tokenising
    the whole file again; another file, max_length or a damaged cache file means a new measurement."""
    cfg = cfg_for(tmp_path, shared_data, "fake_news")
    cfg.trainer.max_length = 128
    first = data_report.for_config(cfg)  # preflight, at submission
    cached = list((tmp_path / "cache" / "data_reports").glob("*.json"))
    assert len(cached) == 1
    measured = []

    def counting(texts, model_cfg):
        measured.append(len(texts))
        return real(texts, model_cfg)

    real = tokens.token_lengths
    monkeypatch.setattr(tokens, "token_lengths", counting)
    monkeypatch.setattr(data_report, "_MEMO", {})  # as in a new process
    again = data_report.for_config(cfg)
    assert measured == [] and again == first
    assert list(again["classes"]) == list(first["classes"])  # the labels' order survives the file
    cfg.trainer.max_length = 64  # the truncated share depends on it
    monkeypatch.setattr(data_report, "_MEMO", {})
    assert data_report.for_config(cfg)["tokens"]["max_length"] == 64 and measured == [980]
    cfg.trainer.max_length = 128
    cached[0].write_text('{"rows_read": ')  # torn: rebuilt, never trusted
    monkeypatch.setattr(data_report, "_MEMO", {})
    assert data_report.for_config(cfg) == first and measured == [980, 980]
