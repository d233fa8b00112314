"""Data: load a labelled text file, clean, deduplicate, split (stratified), tokenise (cached).

    load_table  -> raw DataFrame from CSV/CSV.gz/TSV/JSONL/Parquet
    clean       -> one ``text`` + ``label`` column, whitespace normalised, empties and duplicates dropped
    split       -> stratified train/val/test by ``data.split_seed``
    tokenize    -> token ids per split, cached on disk so every job of a sweep tokenises once

The tokenised cache is keyed by (data sha256, tokenizer, max_length, split settings) and written with an
atomic rename, so concurrent jobs at worst both compute it and one rename wins.

The bottom of the data package with ``data_options`` and ``drops``: the report (``data_report``) and the DVC
stages (``prepare``) are built on this module, and it imports neither.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipeline import atomic
from pipeline.data import data_options, drops
from pipeline.errors import DataError
from pipeline.models import warm

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")


@dataclass
class Splits:
    """Cleaned, split data: DataFrames with columns ``text`` and ``label`` (string labels)."""

    train: pd.DataFrame
    val: pd.DataFrame
    test: pd.DataFrame
    labels: list[str]  # id -> label name; ids follow this order
    data_sha256: str
    stats: dict[str, Any]

    def frame(self, split: str) -> pd.DataFrame:
        return getattr(self, split)


@dataclass
class Encoded:
    """One split as token ids: a flat int32 array plus offsets (fast to save, load and slice)."""

    ids: np.ndarray
    offsets: np.ndarray  # len n+1
    labels: np.ndarray  # int64 label ids

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def item(self, i: int) -> np.ndarray:
        return self.ids[self.offsets[i] : self.offsets[i + 1]]


# ---------------------------------------------------------------------------------------------- loading


def resolve_data_file(file: str, data_dir: str) -> Path:
    """``file`` as given (absolute or relative to the cwd), else by name inside ``data_dir``."""
    candidates = [Path(file).expanduser()]
    if not Path(file).is_absolute():
        candidates.append(Path(data_dir).expanduser() / file)
    for c in candidates:
        if c.is_file():
            return c.resolve()
    looked = ", ".join(str(c.resolve()) for c in candidates)
    raise DataError(
        f"data file '{file}' not found (looked in: {looked}); set PIPELINE_DATA_DIR to the folder that "
        f"holds it (e.g. PIPELINE_DATA_DIR=../shared/data) or pass data.file=/absolute/path"
    )


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _format_of(path: Path, fmt: str) -> str:
    if fmt != "auto":
        return fmt
    name = path.name.lower()
    for suffix, kind in ((".parquet", "parquet"), (".jsonl", "jsonl"), (".json", "jsonl"), (".tsv", "tsv")):
        if name.endswith(suffix) or name.endswith(suffix + ".gz"):
            return kind
    return "csv"


def load_table(path: Path, fmt: str = "auto", encoding: str = "utf-8") -> pd.DataFrame:
    kind = _format_of(path, fmt)
    if path.stat().st_size == 0:
        raise DataError(f"data file '{path}' is empty: point data.file at a file with a header and rows")
    try:
        if kind == "parquet":
            df = pd.read_parquet(path)
        elif kind == "jsonl":
            df = pd.read_json(path, lines=True, encoding=encoding, dtype=False)
        else:
            df = pd.read_csv(path, sep="\t" if kind == "tsv" else ",", encoding=encoding, dtype=str,
                             keep_default_na=False)
    except UnicodeDecodeError as e:
        raise DataError(
            f"data file '{path}' is not valid {encoding} text (bad byte at position {e.start}): re-save it "
            f"as UTF-8 or set data.encoding (e.g. data.encoding=latin-1)"
        ) from None
    except pd.errors.EmptyDataError:
        raise DataError(f"data file '{path}' is empty: point data.file at a file with a header and rows") from None
    except (pd.errors.ParserError, ValueError, OSError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise DataError(f"data file '{path}' could not be read as {kind}: {first}") from None
    if len(df) == 0:
        raise DataError(f"data file '{path}' has a header but no rows")
    return df


# ----------------------------------------------------------------------------------------------- cleaning


def normalise(text: str) -> str:
    """Runs of whitespace to one space, ends stripped (``str.split`` is ``re.sub(r"\\s+")`` 10x faster)."""
    return " ".join(text.split())


def clean(df: pd.DataFrame, text_columns: list[str], label_column: Any, dedup: bool, source: str,
          dedup_columns: list[str] | None = None, label_names: dict[str, str] | None = None
          ) -> tuple[pd.DataFrame, dict[str, int]]:
    """One ``text`` column (text columns joined), one string ``label``; drop empties, then duplicates.

    Columns are given by name or position (``pipeline.data.data_options``); a wrong one is an error that names
    its key. ``label_names`` maps integer labels to names. The counts say how many rows each step dropped.
    """
    texts, label_col, key_cols = data_options.resolve_columns(df, text_columns, label_column, dedup_columns,
                                                              source)
    parts = [df[c].fillna("").astype(str).tolist() for c in texts]  # plain lists: 5x faster than .agg
    text = parts[0] if len(parts) == 1 else ["\n".join(row) for row in zip(*parts)]
    labels = data_options.label_strings(df[label_col])
    labels = data_options.apply_label_names(labels, label_names, source, label_column)
    out = pd.DataFrame({"text": [normalise(x) for x in text], "label": labels}, index=df.index)
    keys = ["text"]
    for i, c in enumerate(key_cols):
        out[f"_key{i}"] = [normalise(x) for x in df[c].fillna("").astype(str).tolist()]
        keys = [f"_key{j}" for j in range(i + 1)]
    n_raw = len(out)
    no_text, no_label = out.text == "", out.label == ""
    out = out[~no_text & ~no_label]
    n_empty = n_raw - len(out)
    n_dup = 0
    if dedup:
        before = len(out)
        out = out.drop_duplicates(subset=keys, keep="first")
        n_dup = before - len(out)
    out = out[["text", "label"]].reset_index(drop=True)
    return out, {"rows_raw": n_raw, "dropped_empty": n_empty, "dropped_empty_text": int(no_text.sum()),
                 "dropped_empty_label": int((no_label & ~no_text).sum()), "dropped_duplicates": n_dup,
                 "rows": len(out)}


# ---------------------------------------------------------------------------------------------- splitting


MIN_PER_CLASS = 3  # one example per split at the very least


def check_classes(df: pd.DataFrame, source: str, label_column: str) -> None:
    counts = df.label.value_counts()
    if len(counts) < 2:
        only = f" ({counts.index[0]!r})" if len(counts) else ""
        raise DataError(
            f"data file '{source}' has {len(counts)} class{only} in column '{label_column}' after cleaning: "
            f"a classifier needs at least 2 (check data.label_column)"
        )
    small = counts[counts < MIN_PER_CLASS]
    if len(small):
        name, n = small.index[0], int(small.iloc[0])
        raise DataError(
            f"class {name!r} in '{source}' has only {n} example(s) after cleaning; a stratified "
            f"train/val/test split needs at least {MIN_PER_CLASS} per class: add data or drop that class"
        )


def stratified_split(df: pd.DataFrame, val_fraction: float, test_fraction: float, seed: int
                     ) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Per class: shuffle by seed, take ceil-rounded val/test shares (>= 1 each), the rest trains."""
    rng = np.random.default_rng(seed)
    parts: dict[str, list[int]] = {s: [] for s in SPLITS}
    for _, idx in sorted(df.groupby("label").groups.items()):
        idx = np.array(sorted(idx))
        rng.shuffle(idx)
        n = len(idx)
        n_val = max(1, int(round(n * val_fraction)))
        n_test = max(1, int(round(n * test_fraction)))
        if n - n_val - n_test < 1:
            n_val, n_test = 1, 1
        parts["val"] += idx[:n_val].tolist()
        parts["test"] += idx[n_val:n_val + n_test].tolist()
        parts["train"] += idx[n_val + n_test:].tolist()
    out = []
    for s in SPLITS:
        take = np.array(parts[s])
        rng.shuffle(take)
        out.append(df.loc[take].reset_index(drop=True))
    return out[0], out[1], out[2]


def subsample(df: pd.DataFrame, max_rows: int | None, seed: int) -> pd.DataFrame:
    """Stratified subsample to ``max_rows`` (class shares kept), for tests and quick demos."""
    if not max_rows or len(df) <= max_rows:
        return df
    frac = max_rows / len(df)
    rng = np.random.default_rng(seed)
    keep: list[int] = []
    for _, idx in sorted(df.groupby("label").groups.items()):
        n = min(len(idx), max(MIN_PER_CLASS, int(round(len(idx) * frac))))
        keep += rng.choice(np.array(sorted(idx)), size=n, replace=False).tolist()
    return df.loc[sorted(keep)].reset_index(drop=True)


def processed_dir(cfg: Any) -> Path:
    """Where ``dvc repro`` (prepare stage) writes the splits of this dataset."""
    return Path(os.environ.get("PIPELINE_PROCESSED_DIR", "data/processed")) / cfg.data.name


#: data settings that decide the split; labels.json records them and training compares them to cfg.data
SPLIT_KEYS = ("format", "text_columns", "label_column", "encoding", "dedup", "dedup_columns", "val_fraction",
              "test_fraction", "split_seed", "max_rows")


def split_params(d: Any) -> dict[str, Any]:
    """The data settings a prepared split was made with (file by name: the fetch stage puts it in data/raw)."""
    out = {"file": Path(str(d.file)).name}
    for key in SPLIT_KEYS:
        value = data_options.effective(d, key)
        out[key] = list(value) if key in ("text_columns", "dedup_columns") and value is not None else value
    if d.get("label_names") is not None:
        out["label_names"] = data_options.label_names(d)
    return out


def prepared_matches(cfg: Any, folder: Path) -> bool:
    """True if ``folder`` holds prepared splits made from this job's data file with its data settings."""
    if not (folder / "labels.json").is_file():
        return False
    meta = json.loads((folder / "labels.json").read_text())
    want, have = split_params(cfg.data), meta.get("params") or {}
    if have.get("file") != want["file"]:  # another file given on top of this dataset's config: not ours
        return False
    why = ", ".join(f"{k}={have.get(k)!r} (job: {v!r})" for k, v in want.items() if have.get(k) != v)
    if not why:
        try:  # the raw file itself when it is here, else the checksum the data config records
            sha = file_sha256(resolve_data_file(cfg.data.file, cfg.paths.data_dir))
        except DataError:
            sha = cfg.data.get("sha256")
        if sha and sha != meta.get("data_sha256"):
            why = f"data_sha256={str(meta.get('data_sha256'))[:12]}... (job's file: {sha[:12]}...)"
    if why:
        log.warning("prepared splits in %s were made with other data settings: %s; building the split from "
                    "the raw file instead (to prepare these settings, put them in configs/data/%s.yaml and run "
                    "`dvc repro prepare@%s`)", folder, why, cfg.data.name, cfg.data.name)
    return not why


def load_splits(cfg: Any) -> Splits:
    """The train/val/test split for ``cfg.data``: prepared files if present, else made from the raw file."""
    prepared = processed_dir(cfg)
    if cfg.data.get("use_prepared", True) and prepared_matches(cfg, prepared):
        return _load_prepared(prepared)
    d = cfg.data
    path = resolve_data_file(d.file, cfg.paths.data_dir)
    st = path.stat()
    memo_key = (str(path), st.st_mtime_ns, st.st_size, json.dumps(_plain(d), sort_keys=True))
    if memo_key in _MEMO:  # preflight already loaded it in this process
        return _MEMO[memo_key]
    sha = file_sha256(path)
    raw = load_table(path, d.format, d.encoding)
    names = data_options.label_names(d)
    df, stats = clean(raw, list(d.text_columns), d.label_column, d.dedup, str(path),
                      data_options.dedup_columns(d), names)
    warning = drops.check_drops(stats, d, str(path))  # raises above data.drop_error_fraction
    if warning:
        log.warning(warning)
    check_classes(df, str(path), d.label_column)
    df = subsample(df, d.max_rows, d.split_seed)
    train, val, test = stratified_split(df, d.val_fraction, d.test_fraction, d.split_seed)
    labels = data_options.label_order(df.label.unique().tolist(), names)
    stats.update({s: len(x) for s, x in zip(SPLITS, (train, val, test))})
    _MEMO.clear()
    _MEMO[memo_key] = Splits(train, val, test, labels, sha, stats)
    return _MEMO[memo_key]


_MEMO: dict[tuple, Splits] = {}


def _plain(node: Any) -> Any:
    from omegaconf import OmegaConf

    return OmegaConf.to_container(node, resolve=True) if OmegaConf.is_config(node) else dict(node)


def _load_prepared(folder: Path) -> Splits:
    meta = json.loads((folder / "labels.json").read_text())
    frames = [pd.read_parquet(folder / f"{s}.parquet") for s in SPLITS]
    labels = list(meta["labels"])
    for s, f in zip(SPLITS, frames):
        unknown = sorted(set(f.label) - set(labels))
        if unknown:
            raise DataError(
                f"prepared split '{folder / (s + '.parquet')}' has labels {unknown} not in labels.json "
                f"({labels}): rerun `dvc repro prepare@{folder.name}`"
            )
    stats = json.loads((folder / "stats.json").read_text()) if (folder / "stats.json").is_file() else {}
    stats = {k: v for k, v in stats.items() if not isinstance(v, dict)}  # the counts, as load_splits gives
    log.info("data from prepared splits %s (dvc stage prepare@%s)", folder, folder.name)
    return Splits(*frames, labels=labels, data_sha256=meta.get("data_sha256", ""), stats=stats)


# --------------------------------------------------------------------------------------------- tokenising


def cache_key(splits: Splits, tokenizer_id: str, max_length: int, d: Any) -> str:
    spec = {
        "data": splits.data_sha256, "tokenizer": tokenizer_id, "max_length": max_length,
        "text_columns": list(d.text_columns), "label_column": d.label_column, "dedup": d.dedup,
        "dedup_columns": data_options.dedup_columns(d) or [],
        "label_names": data_options.label_names(d),
        "val": d.val_fraction, "test": d.test_fraction, "split_seed": d.split_seed, "max_rows": d.max_rows,
        "n": [len(splits.train), len(splits.val), len(splits.test)], "v": 1,
    }
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:24]


def encode(texts: list[str], labels: list[str], label_ids: dict[str, int], tokenizer: Any, max_length: int
           ) -> Encoded:
    enc = tokenizer(texts, truncation=True, max_length=max_length, add_special_tokens=True)["input_ids"]
    lengths = np.fromiter((len(x) for x in enc), dtype=np.int64, count=len(enc))
    offsets = np.zeros(len(enc) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    ids = np.fromiter((t for x in enc for t in x), dtype=np.int32, count=int(offsets[-1]))
    return Encoded(ids, offsets, np.array([label_ids[x] for x in labels], dtype=np.int64))


def tokenize_splits(splits: Splits, tokenizer: Any, tokenizer_id: str, max_length: int, d: Any,
                    cache_dir: str | None) -> dict[str, Encoded]:
    """Token ids for each split, from the on-disk cache when another job already made them."""
    label_ids = {name: i for i, name in enumerate(splits.labels)}
    path = Path(cache_dir) / "tokenized" / f"{cache_key(splits, tokenizer_id, max_length, d)}.npz" \
        if cache_dir else None
    if path is not None and path.is_file():
        try:
            z = warm.token_arrays(path)  # once per process (a packed job runs several points)
            out = {s: Encoded(z[f"{s}_ids"], z[f"{s}_offsets"], z[f"{s}_labels"]) for s in SPLITS}
            log.info("tokenised data from cache %s", path)
            return out
        except Exception as e:  # a damaged cache file is rebuilt, never trusted
            log.warning("ignoring unreadable token cache %s (%s)", path, e)
    out = {s: encode(splits.frame(s).text.tolist(), splits.frame(s).label.tolist(), label_ids, tokenizer,
                     max_length) for s in SPLITS}
    if path is not None:
        buf = io.BytesIO()
        np.savez(buf, **{f"{s}_{k}": getattr(out[s], k) for s in SPLITS for k in ("ids", "offsets", "labels")})
        try:
            atomic.write_bytes(path, buf.getvalue())
            log.info("tokenised data cached at %s", path)
        except OSError as e:
            log.warning("could not write token cache %s (%s); continuing without it", path, e)
    return out
