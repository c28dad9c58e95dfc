#!/usr/bin/env bash
# Reproduce weights/ and reports/fddb/ from the three training runs (see weights/README.md).
#
#   WIDER=../shared/data/widerface FDDB=../shared/data/fddb bash scripts/ship.sh
#
# 1. export the quantized checkpoints (verified bit for bit) and Tiny-YOLO to 8 bits;
# 2. score everything on FDDB in one report beside the measured peers;
# 3. store each model's FDDB figures inside its file; the default is the tiny integer model with
#    the best WIDER-val AP50 (>= 48 px).
set -euo pipefail
WIDER=${WIDER:-data/widerface}
FDDB=${FDDB:-data/fddb}
RUNS=${RUNS:-runs}
# The checkpoint shipped for each model; default $RUNS/<model>/best.pt.
CKPT_DUPNET=${CKPT_DUPNET:-$RUNS/dupnet-tinier-yolo/best.pt}
CKPT_IFQ=${CKPT_IFQ:-$RUNS/ifq-tinier-yolo/best.pt}
CKPT_TINY=${CKPT_TINY:-$RUNS/tiny-yolo/best.pt}
SIZE=${SIZE:-416}           # deployment input size, chosen on WIDER val (weights/README.md)
PEERS=${PEERS:---peer haar --peer retinaface-mnet}
# TINY_DETS=DIR: score Tiny-YOLO from DIR/tiny-yolo-{int8,float}/detections.txt (+ run.json) of an
# earlier run of this script instead of detecting again (only valid when CKPT_TINY is unchanged).
TINY_DETS=${TINY_DETS:-}
CAL="$WIDER/WIDER_train/images"
mkdir -p weights reports

export_all() {  # $1: extra flags (e.g. --fddb-metrics)
  facedet export "$CKPT_DUPNET" --out weights/dupnet-tinier-yolo.fdet --calibration-dir "$CAL" \
    --img-size "$SIZE" ${1:+$1 reports/fddb/metrics.json:dupnet-tinier-yolo}
  facedet export "$CKPT_IFQ" --out weights/ifq-tinier-yolo.fdet --calibration-dir "$CAL" \
    --img-size "$SIZE" ${1:+$1 reports/fddb/metrics.json:ifq-tinier-yolo}
  facedet export "$CKPT_TINY" --out weights/tiny-yolo-int8.fdet --calibration-dir "$CAL" \
    --img-size "$SIZE" ${1:+$1 reports/fddb/metrics.json:tiny-yolo-int8}
}

export_all ""
python scripts/slim_checkpoint.py "$CKPT_DUPNET" weights/dupnet-tinier-yolo.pt --deploy-img-size "$SIZE"
python scripts/slim_checkpoint.py "$CKPT_IFQ" weights/ifq-tinier-yolo.pt --deploy-img-size "$SIZE"
# (via a temporary file: CKPT_TINY may be the shipped file itself, re-saved with the deployment size)
python scripts/slim_checkpoint.py "$CKPT_TINY" weights/.tiny-yolo.fp16.pt.new --half --deploy-img-size "$SIZE"
mv weights/.tiny-yolo.fp16.pt.new weights/tiny-yolo.fp16.pt

if [ -n "$TINY_DETS" ]; then
  TINY="--detections $TINY_DETS/tiny-yolo-int8/detections.txt:tiny-yolo-int8"
  TINY="$TINY --detections $TINY_DETS/tiny-yolo-float/detections.txt:tiny-yolo-float"
else
  TINY="--model weights/tiny-yolo-int8.fdet --model weights/tiny-yolo.fp16.pt:tiny-yolo-float"
fi
# shellcheck disable=SC2086
facedet eval fddb --fddb-root "$FDDB" --out reports/fddb --img-size "$SIZE" \
  --model weights/dupnet-tinier-yolo.fdet --model weights/ifq-tinier-yolo.fdet $TINY $PEERS

export_all --fddb-metrics
# The default is chosen on WIDER val (AP50 of faces >= 48 px, the checkpoint-selection metric),
# never on FDDB, among the two tiny integer models (Tiny-YOLO is the full-precision baseline).
for m in dupnet-tinier-yolo ifq-tinier-yolo; do
  facedet eval wider --data-root "$WIDER" --model "weights/$m.fdet" --img-size "$SIZE" --min-face 48 \
    --out "reports/wider-val-$m.json" >/dev/null
done
best=$(python - <<'PY'
import json
ap = {m: json.load(open(f"reports/wider-val-{m}.json"))["AP50"] for m in ("dupnet-tinier-yolo", "ifq-tinier-yolo")}
print(max(ap, key=ap.get))
PY
)
cp "weights/$best.fdet" weights/default.fdet
echo "default model: $best"
sha256sum weights/*.fdet weights/*.pt
