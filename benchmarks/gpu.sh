#!/usr/bin/env bash
# The GPU measurements of issue 20, as one script for a lent accelerator machine (JAX and PyTorch, no
# TensorFlow there): run it from the repository root with `bash benchmarks/gpu.sh`, writing under $OUT.
#
# Carry to the machine (the device tool's `carry`): run/gpu_carry/, made here beforehand by
#   mkdir -p run/gpu_carry/wheels run/gpu_carry/keras/datasets/fashion-mnist
#   cp /usr/share/datasets/fashion-mnist/*.gz run/gpu_carry/keras/datasets/fashion-mnist/
#   pip download --no-deps -d run/gpu_carry/wheels keras namex optree pandas matplotlib   # what it lacks
#
# It measures, on the JAX backend: the study's Full-GELU VAE at batch 32 on all 60,000 Fashion-MNIST
# images (epoch time; the study reports about 14 s per epoch on a Kaggle T4), images/s at batch 32 and
# 1,024, and how many trainings one GPU takes at once (a suite with --jobs 1, 2, 4, 8 on the same GPU).
set -euo pipefail
OUT=${OUT:-/tmp/gpu_out}
mkdir -p "$OUT"
export KERAS_BACKEND=jax KERAS_HOME=$PWD/run/gpu_carry/keras
if [ -d run/gpu_carry/wheels ]; then pip install -q --no-index --find-links run/gpu_carry/wheels run/gpu_carry/wheels/*.whl; fi
nvidia-smi > "$OUT/nvidia-smi.txt" 2>&1 || true
python -m benchmarks.machine > "$OUT/machine.txt"

# 1. The study's model, batch 32, all of Fashion-MNIST: 3 epochs (the first compiles; read epochs 2-3).
python train_vae.py --act gelu --where both --dataset fashion_mnist --epochs 3 --seed 0 --run-root "$OUT/runs" \
  | tee "$OUT/train.log"

# 2. Images/s of the training step at batch 32 and 1,024, against the plain-Keras reference.
python -m benchmarks.throughput --batch-size 32 1024 --contenders reference base_lrelu gelu_full --no-memory \
  --rounds 3 --json "$OUT/throughput.json" | tee "$OUT/throughput.txt"

# 3. Trainings side by side on the one GPU: 8 runs of 1 epoch on 30,000 images, J at a time.
for J in 1 2 4 8; do
  start=$(date +%s)
  python run_experiments.py --suite all --variants base_lrelu,gelu_full --seeds 4 --epochs 1 --dataset fashion_mnist \
    --limit 30000 --jobs "$J" --eval-samples 0 --out "$OUT/share_j$J" --pool "$OUT/pool_j$J" > "$OUT/share_j$J.log" 2>&1
  echo "jobs $J: $(( $(date +%s) - start )) s for 8 runs" | tee -a "$OUT/share.txt"
done
