#!/usr/bin/env bash
# Measurements behind MiniLM's small-data defaults (docs/results.md, "Default recipe").
# MiniLM on CPU at max_length 128, one run at a time, most informative first (the 2-core machine is shared
# and a fake-news epoch took ~20 min there): fake news at lr 1e-4 for 1, 2 and 3 epochs (seed 0), then
# the README's demo budget (2 epochs) on more seeds and on BBC news.
# Each run is a plain `python run.py` into OUT/<name>; `python -m bench.recipe_table OUT` tabulates them.
#   bash bench/recipe.sh OUT_DIR [REPO_DIR]
set -u
OUT=${1:?usage: bench/recipe.sh OUT_DIR [REPO_DIR]}
REPO=${2:-.}
mkdir -p "$OUT"
run() {  # run NAME OVERRIDES...
  local name=$1; shift
  [ -f "$OUT/$name/metrics.json" ] && return 0
  echo "$(date -u +%T) start $name $*" >> "$OUT/progress.log"
  (cd "$REPO" && python run.py hydra.run.dir="$OUT/$name" paths.cache_dir="$OUT/.cache" \
      trainer.max_length=128 trainer.log_every_steps=25 trainer.warmup_ratio=0.1 "$@") > "$OUT/$name.log" 2>&1
  echo "$(date -u +%T) end   $name rc=$?" >> "$OUT/progress.log"
}
run fake_lr1e-4_e1_s0 data=fake_news trainer.lr=1e-4 trainer.epochs=1 seed=0
run fake_lr1e-4_e2_s0 data=fake_news trainer.lr=1e-4 trainer.epochs=2 seed=0
run fake_lr1e-4_e3_s0 data=fake_news trainer.lr=1e-4 trainer.epochs=3 seed=0
for s in 1 2; do run "fake_lr1e-4_e2_s$s" data=fake_news trainer.lr=1e-4 trainer.epochs=2 seed=$s; done
for s in 0 1 2; do run "bbc_lr1e-4_e2_s$s" data=bbc_news trainer.lr=1e-4 trainer.epochs=2 seed=$s; done
echo "$(date -u +%T) all done" >> "$OUT/progress.log"
