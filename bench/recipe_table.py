"""Tabulate the runs of ``bench/recipe.sh``: test accuracy per (dataset, lr, epochs), mean ± std over seeds.

    python -m bench.recipe_table OUT_DIR [OUT_DIR ...] [--baseline baseline.json]   # made if absent

Run directories are named ``<dataset>[_b<batch size>]_lr<lr>_e<epochs>_s<seed>`` (batch 16 when not
named); the baseline file holds
``pipeline.results.baseline.fit_baseline`` results per dataset (``{"fake_news": {"test": {...}}, ...}``) on the
split the shipped data configs make (bench/results/recipe_baseline.json is the one docs/results.md quotes).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
from pathlib import Path

NAME = re.compile(r"(?P<data>[a-z]+)(?:_b(?P<batch>\d+))?_lr(?P<lr>[0-9.e-]+)_e(?P<epochs>\d+)_s(?P<seed>\d+)$")


Key = tuple[str, int, str, int]  # dataset, batch size, lr, epochs


def collect(outs: list[Path]) -> dict[Key, list[tuple[int, float, float]]]:
    groups: dict[Key, list[tuple[int, float, float]]] = {}
    for d in sorted(d for out in outs for d in out.iterdir()):
        m = NAME.match(d.name)
        if not m or not (d / "metrics.json").is_file():
            continue
        final = json.loads((d / "metrics.json").read_text())
        if final.get("status") != "completed":
            continue
        key = (m["data"], int(m["batch"] or 16), m["lr"], int(m["epochs"]))
        groups.setdefault(key, []).append((int(m["seed"]), final["test"]["accuracy"], final["wall_time_s"]))
    return groups


def compute_baseline(path: Path) -> dict:
    """TF-IDF + logistic regression on each shipped dataset's split (configs/data/<name>.yaml)."""
    from omegaconf import OmegaConf

    from pipeline.config import Config
    from pipeline.data.data import load_splits
    from pipeline.results.baseline import fit_baseline

    out = {}
    for name in ("fake_news", "bbc_news"):
        cfg = OmegaConf.structured(Config)
        cfg.data = OmegaConf.merge(cfg.data, OmegaConf.load(Path("configs/data") / f"{name}.yaml"))
        cfg.paths.data_dir = os.environ.get("PIPELINE_DATA_DIR", "data/raw")
        splits = load_splits(cfg)
        result = fit_baseline(splits.train, splits.val, splits.test)
        out[name] = {k: result[k] for k in ("C", "val", "test", "sizes")}
    path.write_text(json.dumps(out, indent=1) + "\n")
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("out", type=Path, nargs="+")
    ap.add_argument("--baseline", type=Path)
    a = ap.parse_args()
    base = {}
    if a.baseline:
        base = json.loads(a.baseline.read_text()) if a.baseline.is_file() else compute_baseline(a.baseline)
    print("| dataset | batch | lr | epochs | seeds | test accuracy | per seed | TF-IDF baseline (test) |")
    print("|---|---|---|---|---|---|---|---|")
    for (data, batch, lr, epochs), rows in sorted(collect(a.out).items()):
        accs = [acc for _, acc, _ in sorted(rows)]
        mean = statistics.fmean(accs)
        spread = f" ± {statistics.stdev(accs):.3f}" if len(accs) > 1 else " (one seed)"
        b = base.get({"fake": "fake_news", "bbc": "bbc_news"}.get(data, data), {}).get("test", {}).get("accuracy")
        print(f"| {data} | {batch} | {lr} | {epochs} | {','.join(str(s) for s, _, _ in sorted(rows))} | "
              f"{mean:.3f}{spread} | {', '.join(f'{x:.3f}' for x in accs)} | "
              f"{'' if b is None else f'{b:.3f}'} |")


if __name__ == "__main__":
    main()
