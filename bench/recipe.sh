#!/usr/bin/env bash
# Measurements behind MiniLM's small-data defaults (docs/results.md, "Default recipe").
# MiniLM on CPU at max_length 128, one run at a time, seeds 0-2: fake news at lr 1e-4 and 5e-5 for 1, 2 and
# 3 epochs; the chosen recipe (5e-5, 3 epochs) on BBC news; and 1 epoch at batch 8 (twice the steps) on fake
# news, to see whether more steps rescue a 1-epoch budget.
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
for s in 0 1 2; do
  for e in 1 2 3; do run "fake_lr1e-4_e${e}_s$s" data=fake_news trainer.lr=1e-4 trainer.epochs=$e seed=$s; done
done
for s in 0 1 2; do
  for e in 3 2 1; do run "fake_lr5e-5_e${e}_s$s" data=fake_news trainer.lr=5e-5 trainer.epochs=$e seed=$s; done
done
for s in 0 1 2; do run "bbc_lr5e-5_e3_s$s" data=bbc_news trainer.lr=5e-5 trainer.epochs=3 seed=$s; done
for s in 0 1 2; do
  run "fake_b8_lr5e-5_e1_s$s" data=fake_news trainer.batch_size=8 trainer.lr=5e-5 trainer.epochs=1 seed=$s
done
echo "$(date -u +%T) all done" >> "$OUT/progress.log"
