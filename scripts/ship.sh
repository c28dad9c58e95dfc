#!/usr/bin/env bash
# Reproduce weights/ and reports/fddb/ from the three training runs (see weights/README.md).
#
#   WIDER=../shared/data/widerface FDDB=../shared/data/fddb bash scripts/ship.sh
#
# 1. export the quantized checkpoints (verified bit for bit) and Tiny-YOLO to 8 bits;
# 2. score everything on FDDB in one report beside the measured peers;
# 3. store each model's FDDB figures inside its file and make the best integer model the default.
set -euo pipefail
WIDER=${WIDER:-data/widerface}
FDDB=${FDDB:-data/fddb}
RUNS=${RUNS:-runs}
SIZE=${SIZE:-320}           # deployment input size, chosen on WIDER val (weights/README.md)
PEERS=${PEERS:---peer haar --peer retinaface-mnet}
CAL="$WIDER/WIDER_train/images"
mkdir -p weights reports

export_all() {  # $1: extra flags (e.g. --fddb-metrics)
  for m in dupnet-tinier-yolo ifq-tinier-yolo; do
    facedet export "$RUNS/$m/best.pt" --out "weights/$m.fdet" --calibration-dir "$CAL" --img-size "$SIZE" \
      ${1:+$1 reports/fddb/metrics.json:$m}
  done
  facedet export "$RUNS/tiny-yolo/best.pt" --out weights/tiny-yolo-int8.fdet --calibration-dir "$CAL" \
    --img-size "$SIZE" ${1:+$1 reports/fddb/metrics.json:tiny-yolo-int8}
}

export_all ""
python scripts/slim_checkpoint.py "$RUNS/dupnet-tinier-yolo/best.pt" weights/dupnet-tinier-yolo.pt
python scripts/slim_checkpoint.py "$RUNS/ifq-tinier-yolo/best.pt" weights/ifq-tinier-yolo.pt
python scripts/slim_checkpoint.py "$RUNS/tiny-yolo/best.pt" weights/tiny-yolo.fp16.pt --half

# shellcheck disable=SC2086
facedet eval fddb --fddb-root "$FDDB" --out reports/fddb --img-size "$SIZE" \
  --model weights/dupnet-tinier-yolo.fdet --model weights/ifq-tinier-yolo.fdet \
  --model weights/tiny-yolo-int8.fdet --model weights/tiny-yolo.fp16.pt:tiny-yolo-float $PEERS

export_all --fddb-metrics
best=$(python - <<'PY'
import json
models = json.load(open("reports/fddb/metrics.json"))["models"]
ints = ["dupnet-tinier-yolo", "ifq-tinier-yolo", "tiny-yolo-int8"]
print(max(ints, key=lambda m: models[m]["overall"]["disc"]["1000"]))
PY
)
cp "weights/$best.fdet" weights/default.fdet
echo "default model: $best"
sha256sum weights/*.fdet weights/*.pt
