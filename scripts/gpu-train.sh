#!/usr/bin/env bash
# The conditional family's recipe at 128 px on a lent GPU, for MINUTES (6) of training: with the
# install, the data and the checkpoint it ends in about 7, so give the call timeout_s 540; a call
# may run 10 minutes and a session has 15 of device time, machine start included.
# That machine has PyTorch but none of this project's other packages, no network and no ../shared:
# run `bash scripts/gpu-prepare.sh` here first, then, through the device tool from the repository
# root, carrying [".gpu"]:  bash scripts/gpu-train.sh
# It trains on the packed faces with a progress bar that prints img/s, and leaves in $OUT what comes
# back (8 files, 16 MiB each, 64 MiB in all): the checkpoint in fp16 (the recipe's G and D, ~60 MiB,
# split in 15 MiB parts; join them with `cat model.safetensors.part-* > model.safetensors` beside
# config.json), its config, the last sample grid, the loss plot and the log (every 50th progress line,
# then the run's resolved options).
set -euo pipefail
source "$(dirname "$0")/gpu-common.sh"
MINUTES=${MINUTES:-6}
DEVICE=${DEVICE:-cuda}
RUNS=${RUNS:-/tmp/gpu-runs}
$PY -m training cgan --minutes "$MINUTES" --data $P/faces/celeba-10k \
  --folders $P/faces/celeba-test-crops,$P/faces/utkface-10k --image-size 128 --feature-size 128 \
  --batch "${BATCH:-128}" --device "$DEVICE" --kimg 100000 --snapshot-every 200 --outdir "$RUNS" 2>&1 \
  | awk -v RS='[\r\n]+' '!/img_s/ || n++ % 50 == 0 { print; fflush() }' | tee "$OUT/train.log"
R=$(ls -d "$RUNS"/*-cgan-* | tail -1)
cat "$R/options.json" >> "$OUT/train.log"
$PY -c "
import sys
from models import load_checkpoint, save_checkpoint
save_checkpoint(sys.argv[2], load_checkpoint(sys.argv[1]), half=True)" "$R/checkpoint" "$OUT/ck"
mv "$OUT/ck/config.json" "$OUT/"
if [ "$(stat -c %s "$OUT/ck/model.safetensors")" -gt $((15 * 2**20)) ]; then
  split -b 15M -d "$OUT/ck/model.safetensors" "$OUT/model.safetensors.part-"
else
  mv "$OUT/ck/model.safetensors" "$OUT/"
fi
rm -rf "$OUT/ck"
cp "$R/loss.png" "$OUT/"
cp "$(ls "$R"/samples-*.png | tail -1)" "$OUT/samples.png"
ls -la "$OUT"
