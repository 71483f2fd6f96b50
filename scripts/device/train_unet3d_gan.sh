#!/usr/bin/env bash
# One prepared call on the lent GPU machine (issue 11, item 7): train the `unet3d-gan` GPU preset (≤ 8 min),
# return the weights, the log and the last validation picture in $OUT. Carry [".whl-train", ".devdata"]
# (scripts/device/README.md says how to make them). Dry-run here on CPU with:
#   DEVICE=cpu MINUTES=0.5 OUT=/tmp/out DATA=../shared/data/zse-gan-huron SKIP_SETUP=1 bash scripts/device/train_unet3d_gan.sh
set -u
DEVICE=${DEVICE:-cuda}
MINUTES=${MINUTES:-8}
OUT=${OUT:?set OUT}
if [ -z "${SKIP_SETUP:-}" ]; then
  export WHL_DIR=.whl-train; source scripts/device/setup.sh || exit 1
fi
if [ -z "${DATA:-}" ]; then
  python3 scripts/device/pack_huron.py --unpack .devdata/huron.xz /tmp/huron || exit 1
  DATA=/tmp/huron
fi
EXTRA=()
[ "$DEVICE" = cpu ] && EXTRA=(--amp none --set train.batch_size=1 --set data.crop_yx=32 --set data.pairs.phantom_seeds=1)
nvidia-smi --query-gpu=name,memory.total --format=csv 2>/dev/null | tee "$OUT/gpu.txt"
zse train unet3d-gan --device "$DEVICE" --data "$DATA" --out /tmp/unet-gpu --max-minutes "$MINUTES" --quiet "${EXTRA[@]}" \
  2>&1 | tail -20 | tee "$OUT/train.txt"
cp /tmp/unet-gpu/g_s.pt "$OUT/unet3d-gan-gpu.pt"
[ -f /tmp/unet-gpu/supervised.pt ] && cp /tmp/unet-gpu/supervised.pt "$OUT/unet3d-gan-gpu-supervised.pt"
cp /tmp/unet-gpu/train_log.csv "$OUT/"
cp "$(ls /tmp/unet-gpu/val_*.png | tail -1)" "$OUT/" 2>/dev/null
ls -la "$OUT"
