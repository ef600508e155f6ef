#!/usr/bin/env bash
# The image-to-image editor at 128 px on a lent GPU, for MINUTES (7) of training: with the install,
# the data and the checkpoint it ends in about 8, so give the call timeout_s 560; a call may run 10
# minutes and a session has 15 of device time, machine start included.
# Prepare here first:  GEOMETRY=head GUIDES=/work/runs/guides [INIT=<the last run's checkpoint>] \
#   bash scripts/gpu-prepare.sh     then, through the device tool from the repository root, carrying
# [".gpu"]:  bash scripts/gpu-editor.sh
# A run continues the carried checkpoint (.gpu/editor: G, its EMA and D; the optimisers start fresh:
# their state would not fit in the 64 MiB a call carries beside the faces). It prints the FLOPs of a
# training image, then img/s and the share of the H200's dense bf16 peak (PEAK, 989 TFLOP/s), and
# leaves in $OUT what comes back (8 files of 16 MiB at most): the checkpoint in fp16 (split in 15 MiB
# parts; join them with `cat model.safetensors.part-* > model.safetensors` beside config.json), the
# last sample sheet, the loss plot and the log.
set -euo pipefail
source "$(dirname "$0")/gpu-common.sh"
RUN=${RUN:-/tmp/gpu-editor}
INIT=()
if [ -f "$P/editor/config.json" ]; then INIT=(--init "$P/editor"); fi
$PY -m training editor --minutes "${MINUTES:-7}" --data $P/faces/celeba-10k \
  --folders $P/faces/celeba-test-crops,$P/faces/utkface-10k --guides $P/guides "${INIT[@]}" \
  --image-size "${SIZE:-128}" --width "${WIDTH:-32}" --skips "${SKIPS:-3}" --d-width "${D_WIDTH:-16}" \
  ${ATTRIBUTES:+--attributes "$ATTRIBUTES"} --batch "${BATCH:-256}" --device "${DEVICE:-cuda}" --peak-tflops "${PEAK:-989}" --kimg 100000 \
  --snapshot-kimg "${SNAPSHOT_KIMG:-500}" --out "$RUN" 2>&1 | tee "$OUT/train.log"
cat "$RUN/options.json" >> "$OUT/train.log"
$PY -c "
import sys
from models.checkpoint import load_editor, save_editor
save_editor(sys.argv[2], load_editor(sys.argv[1]), half=True)" "$RUN/checkpoint" "$OUT/ck"
mv "$OUT/ck/config.json" "$OUT/"
split -b 15M -d "$OUT/ck/model.safetensors" "$OUT/model.safetensors.part-"
rm -rf "$OUT/ck"
cp "$RUN/loss.png" "$OUT/"
cp "$(ls "$RUN"/samples-*.png | tail -1)" "$OUT/samples.png"
ls -la "$OUT"
