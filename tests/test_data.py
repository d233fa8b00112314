"""Data loading, cleaning, splitting and the token cache, on the real shared datasets."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from omegaconf import OmegaConf

from pipeline.config import Config
from pipeline.data import data
from pipeline.errors import DataError


def write_table(df: pd.DataFrame, path: Path) -> Path:
    """``df`` in the format its name says: .csv, .csv.gz, .tsv, .jsonl, else Parquet."""
    if path.name.endswith(".csv.gz"):
        with gzip.open(path, "wt") as f:
            df.to_csv(f, index=False)
    elif path.suffix == ".csv":
        df.to_csv(path, index=False)
    elif path.suffix == ".tsv":
        df.to_csv(path, sep="\t", index=False)
    elif path.suffix == ".jsonl":
        df.to_json(path, orient="records", lines=True)
    else:
        df.to_parquet(path, index=False)
    return path


def make_cfg(tmp_path: Path, shared: Path, **data_over) -> object:
    cfg = OmegaConf.structured(Config)
    cfg.paths.data_dir = str(shared)
    cfg.paths.cache_dir = str(tmp_path / "cache")
    for k, v in data_over.items():
        cfg.data[k] = v
    return cfg


def test_bbc_dedup_and_stratified_split(tmp_path, shared_data):
    cfg = make_cfg(tmp_path, shared_data, dedup_columns=["text"])
    s = data.load_splits(cfg)
    assert s.stats["rows_raw"] == 2225
    assert s.stats["dropped_duplicates"] >= 133  # the README's 133 exact duplicates (+ whitespace variants)
    texts = [set(s.frame(x).text) for x in data.SPLITS]
    assert not (texts[0] & texts[1] or texts[0] & texts[2] or texts[1] & texts[2]), "a text leaks across splits"
    assert s.labels == sorted(["business", "entertainment", "politics", "sport", "tech"])
    n = sum(len(s.frame(x)) for x in data.SPLITS)
    for label, share in s.train.label.value_counts(normalize=True).items():
        assert abs(s.val.label.value_counts(normalize=True)[label] - share) < 0.03
    assert abs(len(s.val) / n - 0.1) < 0.01 and abs(len(s.test) / n - 0.1) < 0.01


def test_split_is_a_function_of_split_seed(tmp_path, shared_data):
    a = data.load_splits(make_cfg(tmp_path, shared_data, max_rows=300))
    b = data.load_splits(make_cfg(tmp_path, shared_data, max_rows=300))
    c = data.load_splits(make_cfg(tmp_path, shared_data, max_rows=300, split_seed=7))
    assert a.test.text.tolist() == b.test.text.tolist()
    assert a.test.text.tolist() != c.test.text.tolist()


def test_fake_news_text_only_and_classic_file_shape(tmp_path, shared_data):
    cfg = make_cfg(tmp_path, shared_data, file="perez_rosas_fakenews.csv", text_columns=["text"])
    s = data.load_splits(cfg)
    assert s.labels == ["FAKE", "REAL"]
    # the classic fake_or_real_news.csv has columns title,text,label: loads with data=fake_news data.file=...
    classic = tmp_path / "fake_or_real_news.csv"
    src = pd.read_csv(shared_data / "perez_rosas_fakenews.csv")
    src[["title", "text", "label"]].to_csv(classic, index_label="")
    s2 = data.load_splits(make_cfg(tmp_path, shared_data, file=str(classic), text_columns=["text"]))
    assert len(s2.train) == len(s.train)


@pytest.mark.parametrize("fmt", ["csv", "csv.gz", "tsv", "jsonl", "parquet"])
def test_formats(tmp_path, shared_data, fmt):
    df = pd.read_csv(shared_data / "bbc_news.csv.gz").groupby("label").head(12)[["title", "text", "label"]]
    path = write_table(df, tmp_path / f"sample.{fmt}")
    s = data.load_splits(make_cfg(tmp_path, shared_data, file=str(path), dedup=False))
    assert sum(len(s.frame(x)) for x in data.SPLITS) == 60


@pytest.mark.parametrize("content, expect", [
    (b"", "is empty"),
    (b"title,text,label\n", "has a header but no rows"),
    (b"title,body,label\nA,b,c\nD,e,f\n", "no column 'text'"),
    (b"title,text,label\n" + b"t,x\xff\xfe,a\n" * 5, "not valid utf-8"),
    (b"title,text,label\n" + b"".join(b"t,text %d,same\n" % i for i in range(10)), "needs at least 2"),
    (b"title,text,label\n" + b"".join(b"t,text %d,a\n" % i for i in range(10)) + b"t,lonely,b\n",
     "only 1 example"),
])
def test_bad_data_files_say_what_is_wrong(tmp_path, shared_data, content, expect):
    path = tmp_path / "bad.csv"
    path.write_bytes(content)
    with pytest.raises(DataError) as e:
        data.load_splits(make_cfg(tmp_path, shared_data, file=str(path)))
    assert expect.lower() in str(e.value).lower()
    assert "\n" not in str(e.value)


def test_missing_file_names_where_it_looked(tmp_path, shared_data):
    with pytest.raises(DataError, match="PIPELINE_DATA_DIR") as e:
        data.load_splits(make_cfg(tmp_path, shared_data, file="nope.csv"))
    assert str(shared_data / "nope.csv") in str(e.value)


def test_missing_label_column_lists_columns(tmp_path, shared_data):
    with pytest.raises(DataError, match="columns present: id, title, text, label"):
        data.load_splits(make_cfg(tmp_path, shared_data, label_column="topic"))


_TOKENIZE = """
import sys, json
from omegaconf import OmegaConf
from pipeline.data import data
from pipeline.models import model
from pipeline.config import Config
cfg = OmegaConf.structured(Config)
cfg.paths.data_dir, cfg.paths.cache_dir = sys.argv[1], sys.argv[2]
cfg.data.max_rows = 400
s = data.load_splits(cfg)
tok, ident = model.load_tokenizer(cfg.model)
enc = data.tokenize_splits(s, tok, ident, 128, cfg.data, cfg.paths.cache_dir)
print(json.dumps({k: int(v.ids.sum()) for k, v in enc.items()}))
"""


@pytest.mark.slow  # four Pythons that load the tokenizer: 40 s on 2 loaded cores, the fast tier's longest test
def test_token_cache_shared_by_concurrent_jobs(tmp_path, shared_data):
    cache = tmp_path / "cache"
    procs = [subprocess.Popen([sys.executable, "-c", _TOKENIZE, str(shared_data), str(cache)],
                              stdout=subprocess.PIPE, text=True) for _ in range(3)]
    outs = [json.loads(p.communicate(timeout=120)[0]) for p in procs]
    assert all(p.returncode == 0 for p in procs)
    assert outs[0] == outs[1] == outs[2]
    files = list((cache / "tokenized").iterdir())
    assert len(files) == 1 and files[0].suffix == ".npz", files  # one entry, no temp leftovers
    warm = subprocess.run([sys.executable, "-c", _TOKENIZE, str(shared_data), str(cache)],
                          capture_output=True, text=True, timeout=120)
    assert json.loads(warm.stdout) == outs[0]
