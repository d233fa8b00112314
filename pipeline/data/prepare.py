"""The DVC stages of ``dvc.yaml``: bring a raw dataset into ``data/raw/`` and split it once for every job.

    python -m pipeline.data.prepare fetch   data=bbc_news [overrides]   # -> data/raw/bbc_news.csv.gz (sha256 checked)
    python -m pipeline.data.prepare prepare data=bbc_news [overrides]   # -> data/processed/bbc_news/

Both compose the project's Hydra config (``configs/``) exactly as ``run.py`` does, so the data settings
of a stage and of a training job come from the same file: ``configs/data/<name>.yaml``.

``fetch`` copies ``<file>`` from the folder named by ``PIPELINE_DATA_MIRROR`` (a shared copy, e.g.
``../shared/data`` or a ``/work3`` folder), else downloads ``data.url``, and accepts it only if its sha256
is ``data.sha256``: a wrong file is refused and ``data/raw/`` keeps what it had (the new copy is checked
in a temp file and renamed into place only when it matches).

``prepare`` cleans, deduplicates and splits with the functions training uses (``pipeline.data.data.load_splits``
on the raw file) and writes ``{train,val,test}.parquet``, ``labels.json`` (labels, data sha256 and the data
settings of the split) and ``stats.json`` (counts per split and label, rows dropped, token lengths under the
model's tokenizer: ``pipeline.data.tokens``, MiniLM's with the default config). A training job uses these
files only when its own data settings are the recorded ones (``pipeline.data.data.prepared_matches``);
otherwise it warns and splits the raw file itself.

Errors are one line on stderr (``error: ...``) and exit status 2.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from pipeline.config import compose
from pipeline.data import tokens
from pipeline.data.data import file_sha256
from pipeline.errors import DataError, PipelineError

RAW_DIR = Path("data/raw")  # relative to the repository root, where `dvc repro` runs the stages
PROCESSED_DIR = Path("data/processed")
MIRROR_ENV = "PIPELINE_DATA_MIRROR"
TRUNCATION_POINTS = (128, 256, 512)  # share of texts longer than these trainer.max_length values
USAGE = "usage: python -m pipeline.data.prepare fetch|prepare data=<name> [hydra overrides ...]"


# ------------------------------------------------------------------------------------------------- fetch


def _expected_sha(cfg: Any) -> str:
    sha = cfg.data.get("sha256")
    if not sha:
        raise DataError(
            f"configs/data/{cfg.data.name}.yaml records no sha256 for '{cfg.data.file}': add "
            f"`sha256: <hash>` (sha256sum {Path(str(cfg.data.file)).name}) so a wrong file can be refused"
        )
    return str(sha).lower()


def _copy_from(source: Any, tmp: Path, what: str) -> None:
    """Stream a file object into ``tmp``."""
    try:
        with open(tmp, "wb") as out:
            shutil.copyfileobj(source, out, 1 << 20)
    except OSError as e:
        raise DataError(f"could not copy {what} to '{tmp.parent}': {e.strerror or e}") from None


def fetch(cfg: Any, raw_dir: Path = RAW_DIR, mirror: str | None = None) -> Path:
    """``raw_dir/<file>`` from the mirror folder or ``data.url``, verified against ``data.sha256``."""
    name = Path(str(cfg.data.file)).name
    expected = _expected_sha(cfg)
    dest = raw_dir / name
    mirror = mirror if mirror is not None else os.environ.get(MIRROR_ENV) or None
    url = cfg.data.get("url")
    if not mirror and not url:
        if dest.is_file() and file_sha256(dest) == expected:
            print(f"{dest} is present and its sha256 matches; nothing to fetch")
            return dest
        raise DataError(
            f"no source for '{name}': {MIRROR_ENV} is not set and configs/data/{cfg.data.name}.yaml has no "
            f"url; set {MIRROR_ENV}=<folder holding {name}> (e.g. ../shared/data) or run `dvc pull`"
        )
    raw_dir.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=raw_dir, prefix=f".{name}.", suffix=".part")
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        if mirror:
            src = Path(mirror).expanduser() / name
            if not src.is_file():
                raise DataError(f"{MIRROR_ENV}={mirror} holds no '{name}': point it at the folder that has it")
            where = str(src)
            with open(src, "rb") as f:
                _copy_from(f, tmp, where)
        else:
            where = str(url)
            try:
                with urllib.request.urlopen(str(url), timeout=60) as response:
                    _copy_from(response, tmp, where)
            except (urllib.error.URLError, OSError, ValueError) as e:
                reason = getattr(e, "reason", None) or e
                raise DataError(
                    f"could not download {url} ({reason}): offline? set {MIRROR_ENV}=<folder holding {name}> "
                    "(e.g. ../shared/data) or run `dvc pull`"
                ) from None
        got = file_sha256(tmp)
        if got != expected:
            raise DataError(
                f"refusing '{where}': its sha256 is {got}, configs/data/{cfg.data.name}.yaml expects "
                f"{expected} ({dest} left as it was)"
            )
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
    print(f"fetched {dest} from {where} (sha256 {expected[:12]}... ok)")
    return dest


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# ----------------------------------------------------------------------------------------------- prepare


def token_length_stats(texts: dict[str, list[str]], model_cfg: Any) -> dict[str, Any] | None:
    """Token-length statistics per split (``pipeline.data.tokens.length_stats``) under the model's
    tokenizer; None when its ``tokenizer.json`` is not on this machine."""
    out: dict[str, Any] = {}
    for split, items in texts.items():
        measured = tokens.token_lengths(items, model_cfg)
        if measured is None:
            return None
        lengths, out["tokenizer"] = measured
        out[split] = tokens.length_stats(lengths, TRUNCATION_POINTS)
    return out


def prepare(cfg: Any, raw_dir: Path = RAW_DIR, out_root: Path = PROCESSED_DIR) -> Path:
    """``out_root/<name>/{train,val,test}.parquet, labels.json, stats.json`` from ``raw_dir/<file>``."""
    from omegaconf import OmegaConf

    from pipeline import atomic
    from pipeline.data.data import SPLITS, load_splits, split_params

    name = Path(str(cfg.data.file)).name
    raw = raw_dir / name
    if not raw.is_file():
        raise DataError(f"'{raw}' does not exist: run `dvc repro fetch@{cfg.data.name}` (or `dvc pull`) first")
    expected = cfg.data.get("sha256")
    sha = file_sha256(raw)
    if expected and sha != str(expected).lower():
        raise DataError(f"'{raw}' has sha256 {sha}, configs/data/{cfg.data.name}.yaml expects {expected}: "
                        f"rerun `dvc repro fetch@{cfg.data.name}`")
    params = split_params(cfg.data)
    job = OmegaConf.create(OmegaConf.to_container(cfg, resolve=True))
    job.data.file = str(raw.resolve())
    job.data.use_prepared = False  # the raw file, through the very code path a training job takes
    splits = load_splits(job)

    frames = {s: splits.frame(s) for s in SPLITS}
    by_label = {s: {lab: int(n) for lab, n in sorted(f.label.value_counts().items())} for s, f in frames.items()}
    stats = {**splits.stats, "labels": by_label,
             "token_lengths": token_length_stats({s: f.text.tolist() for s, f in frames.items()}, cfg.model)}
    labels = {"dataset": cfg.data.name, "labels": splits.labels, "data_sha256": splits.data_sha256,
              "params": params}

    def fill(folder: Path) -> None:
        for s, f in frames.items():
            f[["text", "label"]].to_parquet(folder / f"{s}.parquet", index=False)
        atomic.write_json(folder / "labels.json", labels)
        atomic.write_json(folder / "stats.json", stats)

    out = out_root / cfg.data.name
    atomic.write_dir(out, fill)
    counts = " / ".join(f"{len(frames[s])} {s}" for s in SPLITS)
    print(f"prepared {out}: {counts}, {len(splits.labels)} labels, "
          f"{splits.stats.get('dropped_duplicates', 0)} duplicates removed")
    return out


# --------------------------------------------------------------------------------------------------- CLI


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in ("fetch", "prepare"):
        print(USAGE, file=sys.stderr)
        return 2
    command, overrides = argv[0], argv[1:]
    try:
        cfg = compose(overrides)
        if command == "fetch":
            fetch(cfg)
        else:
            prepare(cfg)
    except PipelineError as e:
        if os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        print(f"error: {e}", file=sys.stderr, flush=True)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
