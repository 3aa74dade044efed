#!/usr/bin/env bash
# The suites of docs/suites.md's plan "data or training length" (issue 28), one after another, each published
# into results/<name>/ before the next one extends its runs. Running it again skips what is published and
# resumes a suite left half-done (the suite runner skips finished runs and resumes the others).
#   bash scripts/data_vs_steps.sh > run/data_vs_steps.log 2>&1 &
set -uo pipefail
cd "$(dirname "$0")/.."
E=run/experiments
mkdir -p "$E"
suite() {  # the suite folder's name, then run_experiments.py's arguments
  local name=$1; shift
  local cmd="python run_experiments.py $* --seeds 5 --jobs 2 --out $E/$name"
  if [ -f "results/$name/README.md" ]; then echo "== $name: published already"; return; fi
  echo "== $(date -u +%FT%TZ) $name: $cmd"
  $cmd 2>&1 | tee -a "$E/$name.log"
  python -m scripts.publish_results "$E/$name" "results/$name" --command "$cmd" --log "$E/$name.log" > /dev/null \
    && echo "== $(date -u +%FT%TZ) $name published"
}
# 9,000 Fashion-MNIST images: 10 epochs (2,820 steps), then the same runs extended to the steps of all of it
suite activations_fashion_mnist_limit10000_e10_val --suite activations --dataset fashion_mnist --limit 10000 --epochs 10
suite activations_fashion_mnist_limit10000_steps16880_val --suite activations --dataset fashion_mnist --limit 10000 --steps 16880
# all 54,000 Fashion-MNIST training images for 10 epochs: 16,880 steps
suite activations_fashion_mnist_e10_val --suite activations --dataset fashion_mnist --epochs 10
# mnist_5k: the nine variants at 30 epochs (3,390 steps), then the four activation variants extended to 100
suite all_mnist_5k_e30_val --suite all --dataset mnist_5k --epochs 30
suite activations_mnist_5k_e100_val --suite activations --dataset mnist_5k --epochs 100
