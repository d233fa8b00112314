"""Any labelled text file by configuration alone: formats, column names or positions, integer labels with
names, and dataset settings that stay with their own file (issue 12)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from omegaconf import OmegaConf

from pipeline.data import data, data_options
from pipeline.errors import DataError
from tests.conftest import ROOT, read_json, run_py
from tests.test_data import make_cfg, write_table

NAMES = ["business", "entertainment", "politics", "sport", "tech"]
FAST = ["model=tiny", "trainer.max_length=32", "trainer.batch_size=8", "trainer.max_steps=6",
        "trainer.lr=3e-3", "trainer.log_every_steps=2"]


def user_frame(shared: Path, n: int = 150) -> pd.DataFrame:
    """BBC rows under other column names, labels as integer ids (NAMES order), the label column first."""
    src = pd.read_csv(shared / "bbc_news.csv.gz").groupby("label").head(n // len(NAMES))
    return pd.DataFrame({"category": [NAMES.index(x) for x in src.label], "headline": src.title.tolist(),
                         "body": src.text.tolist()})


@pytest.mark.parametrize("suffix,label_column", [(".csv", "category"), (".tsv", "0"), (".jsonl", "category"),
                                                 (".parquet", "-3")])
def test_user_file_trains_on_top_of_the_default_config(tmp_path, shared_data, suffix, label_column):
    """The default config is BBC's (dedup_columns: [text] for bbc_news.csv.gz): none of it may leak."""
    file = write_table(user_frame(shared_data), tmp_path / f"news{suffix}")
    run_dir = tmp_path / "run"
    r = run_py(tmp_path, *FAST, f"data.file={file}", "data.text_columns=[headline,body]",
               f"data.label_column={label_column}", f"data.label_names=[{','.join(NAMES)}]",
               f"hydra.run.dir={run_dir}")
    assert r.returncode == 0, r.stderr[-2000:]
    m = read_json(run_dir / "metrics.json")
    assert m["status"] == "completed" and m["num_labels"] == 5
    config = read_json(run_dir / "checkpoints" / "best" / "config.json")
    assert [config["id2label"][str(i)] for i in range(5)] == NAMES  # id i = label_names[i]
    report = read_json(run_dir / "run_info.json")["data_report"]
    assert report["rows_read"] == 150 and list(report["classes"]) == NAMES
    assert sum(report["classes"].values()) == 150 - sum(report["dropped"].values()) >= 145
    assert sorted(read_json(run_dir / "metrics.json")["test_classes"]["labels"]) == sorted(NAMES)
    assert set(pd.read_csv(run_dir / "test_predictions.csv").label) <= set(NAMES)


def test_csv_base_is_dataset_neutral(tmp_path, shared_data):
    file = write_table(user_frame(shared_data), tmp_path / "news.jsonl")
    run_dir = tmp_path / "run"
    r = run_py(tmp_path, *FAST, "data=csv", f"data.file={file}", "data.text_columns=[body]",
               "data.label_column=category", f"hydra.run.dir={run_dir}")
    assert r.returncode == 0, r.stderr[-2000:]
    assert read_json(run_dir / "metrics.json")["status"] == "completed"
    # no label_names: the integer ids are the labels
    assert read_json(run_dir / "checkpoints" / "best" / "config.json")["id2label"]["0"] == "0"


def test_data_csv_without_a_file_says_so(tmp_path):
    r = run_py(tmp_path, "data=csv", "model=tiny")
    assert r.returncode == 2 and r.stderr.strip().splitlines()[-1].startswith("error: data.file is not set")


def cfg_for(tmp_path: Path, shared: Path, yaml: str = "bbc_news", **over):
    """The schema's config with configs/data/<yaml>.yaml merged in, then ``over`` set on ``data``."""
    cfg = make_cfg(tmp_path, shared)
    cfg.data = OmegaConf.merge(cfg.data, OmegaConf.load(ROOT / "configs" / "data" / f"{yaml}.yaml"))
    for k, v in over.items():
        cfg.data[k] = v
    return cfg


def test_file_specific_settings_apply_only_to_their_own_file(tmp_path, shared_data):
    own = cfg_for(tmp_path, shared_data)
    assert data_options.dedup_columns(own.data) == ["text"]
    assert data.split_params(own.data)["dedup_columns"] == ["text"]  # what dvc's prepare stage records
    other = cfg_for(tmp_path, shared_data, file=str(tmp_path / "mine.csv"))
    assert data_options.dedup_columns(other.data) is None
    chosen = cfg_for(tmp_path, shared_data, file=str(tmp_path / "mine.csv"), dedup_columns=["body"])
    assert data_options.dedup_columns(chosen.data) == ["body"]  # the user's own setting always wins
    s = data.load_splits(own)
    assert s.stats["dropped_duplicates"] >= 133  # BBC still deduplicates on the article body


@pytest.mark.parametrize("key,value,named", [
    ("text_columns", ["headline", "summary"], "data.text_columns"),
    ("label_column", "topic", "data.label_column"),
    ("dedup_columns", ["title"], "data.dedup_columns"),
    ("label_column", "7", "data.label_column=7 is out of range"),
])
def test_each_column_setting_is_checked_and_named(tmp_path, shared_data, key, value, named):
    file = write_table(user_frame(shared_data, 50), tmp_path / "news.csv")
    cfg = cfg_for(tmp_path, shared_data, "csv", file=str(file), text_columns=["headline", "body"],
                  label_column="category")
    cfg.data[key] = value
    with pytest.raises(DataError) as e:
        data.load_splits(cfg)
    message = str(e.value)
    assert named in message and "columns present: category, headline, body" in message
    others = {"data.text_columns", "data.label_column", "data.dedup_columns"} - {named.split("=")[0].split()[0]}
    assert not any(o in message for o in others), message


def test_label_names_as_a_map_and_unnamed_ids(tmp_path, shared_data):
    file = write_table(user_frame(shared_data, 50), tmp_path / "news.parquet")
    cfg = cfg_for(tmp_path, shared_data, "csv", file=str(file), text_columns=["body"], label_column="category",
                  label_names={i: n for i, n in enumerate(NAMES)})
    assert data.load_splits(cfg).labels == NAMES
    cfg.data.label_names = NAMES[:3]
    with pytest.raises(DataError, match=r"labels \['3', '4'\] in column 'category' that data.label_names"):
        data.load_splits(cfg)


def test_jsonl_float_labels_read_as_integers(tmp_path, shared_data):
    df = user_frame(shared_data, 50)
    df["category"] = df["category"].astype(float)
    (tmp_path / "f.jsonl").write_text("".join(json.dumps(r) + "\n" for r in df.to_dict("records")))
    cfg = cfg_for(tmp_path, shared_data, "csv", file=str(tmp_path / "f.jsonl"), text_columns=["body"],
                  label_column="category", label_names=NAMES)
    assert data.load_splits(cfg).labels == NAMES
