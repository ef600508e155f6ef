# Sourced by the scripts that run on a lent GPU machine (gpu-train.sh, gpu-editor.sh): $OUT made,
# the carried wheels installed beside that machine's PyTorch (WHEELS=0 skips it), unbuffered output,
# and which torch on which device.
OUT=${OUT:-/tmp/gpu-out}
mkdir -p "$OUT"
PY=${PY:-python3}
P=${PACK:-.gpu}
if [ "${WHEELS:-1}" = 1 ]; then
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site $P/whl/*.whl
  export PYTHONPATH=/tmp/site
fi
export PYTHONUNBUFFERED=1
$PY -c "import torch; print('torch', torch.__version__, 'on', torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'cpu')"
