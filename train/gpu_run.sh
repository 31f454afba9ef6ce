#!/bin/sh
# One prepared colour-training run on a lent GPU (device `run`, at most 9 minutes of training).
# Prepare here (the data travels in shared/pack, ignored by git and under 64 MiB with the code):
#   python -m restore.train.pack ../shared/data/train shared/pack/train --budget-mb 50
#   python -m restore.train.pack ../shared/data/val shared/pack/val --budget-mb 3
# then run there:  sh train/gpu_run.sh    (timeout_s 600; results come back from $OUT)
# It continues the shipped generator and brings back the fp16 generator with the shipped
# decoding settings (in two parts: a returned file holds at most 16 MiB; join them with
# `cat g_gpu.part* > g_gpu.safetensors`), the loss log and the validation metrics. Continue on
# the CPU with  restore train ... --init-g g_gpu.safetensors
set -u
SECONDS_OF_TRAINING=${SECONDS_OF_TRAINING:-480}
OUT=${OUT:-/tmp/out}
export PYTHONUNBUFFERED=1
python3 -m pip install -q --no-deps --no-build-isolation --no-index -e . || exit 1
timeout "$SECONDS_OF_TRAINING" python3 -c 'from restore.cli import main; main()' train \
    shared/pack/train --val shared/pack/val --out /tmp/run \
    --init-g weights/restore_g.safetensors --device cuda --precision bf16 \
    --crop 176 --batch-size 64 --degrade 0.5 --class-l1 3 --lr-l1 1e-4 \
    --l1-steps 400000 --gan-steps 0 --val-every 200 --val-images 60 \
    --checkpoint-every 200 --cache-mb 4000 2>&1 | tail -n 400 > "$OUT/train.log"
cp /tmp/run/losses.csv /tmp/run/metrics.jsonl "$OUT/" 2>/dev/null
python3 -m restore.train.calibrate /tmp/run/g_latest.safetensors --gain 1.2 --temperature 0.38 \
    --out /tmp/g_gpu.safetensors > "$OUT/calibrate.json" 2>&1
split -b 15m -d /tmp/g_gpu.safetensors "$OUT/g_gpu.part"
ls -la "$OUT"
