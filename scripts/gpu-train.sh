#!/usr/bin/env bash
# The conditional family's recipe at 128 px on a lent GPU, for at most ~8 minutes of training,
# run through the device tool from the repository root:  bash scripts/gpu-train.sh
# It installs the project, aligns the three face sets at 128 px (cached on that machine only: 1.8 GB),
# trains with a progress bar that prints img/s, and leaves the run folder (checkpoint, snapshots for
# `python -m training curve`, sample grids, loss plot) under $OUT/runs, which comes back.
set -euo pipefail
OUT=${OUT:-/tmp/gpu-out}
MINUTES=${MINUTES:-8}
D=../shared/data
python3 -m venv .venv-gpu
.venv-gpu/bin/pip install -q -e .
PY=.venv-gpu/bin/python
$PY -c "import torch; print('device:', torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'cpu')"
# aligning is CPU work: 16 cores there
$PY -c "
from training.folders import align_folder
for r in ('celeba-10k', 'celeba-test-crops', 'utkface-10k'):
    print(r, align_folder('$D/' + r, 128, cache_dir=__import__('pathlib').Path('/tmp/faceedit-cache'), workers=8).summary()['faces'])
"
$PY -m training cgan --minutes "$MINUTES" --data $D/celeba-10k \
  --folders $D/celeba-test-crops,$D/utkface-10k --image-size 128 --feature-size 128 --batch 128 \
  --device cuda --kimg 100000 --snapshot-every 200 --cache-dir /tmp/faceedit-cache --outdir "$OUT/runs"
ls -la "$OUT/runs"/*/
