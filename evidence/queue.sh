#!/bin/bash
# Session 20 (fifth form): waits for a running suite or Torch-Pruning process, then per net the
# edge suite's seeds 0-2 (the cells still missing) and the Torch-Pruning comparison on the same
# dense checkpoints; by default MobileNet, DS-CNN, then ResNet-8 (QUEUE_NETS picks; a net whose
# cells are all there costs a few seconds). No cell is forced:
# the failed legc_default_block cells of the old refusal are all gone (redone or dropped with
# MobileNet's lost checkpoint), so a missing cell is simply made. One job at a time: both time
# LiteRT latency.
cd "$(dirname "$0")/.."
source .venv/bin/activate
export LEGC_DATA_DIR=${LEGC_DATA_DIR:-/work/shared/data}
mkdir -p runs
S="python tools/edge_suite.py --out evidence/edge-suite --no-doc --device-python .venv-device/bin/python"
while pgrep -f "tools/edge_suite.py|tools/channels_vs_torch_pruning.py" >/dev/null; do sleep 10; done
for net in ${QUEUE_NETS:-mobilenet_v1_025 ds_cnn resnet8}; do
  echo "queue: suite $net starts $(date -u)"
  $S --nets $net --seeds 0,1,2; rc=$?
  echo "queue: suite $net ends $(date -u) rc=$rc"
  python tools/channels_vs_torch_pruning.py --nets $net --seeds 0,1,2 --criteria l2 --factors 1.5,2,3 --cache evidence/edge-suite/dense-cache --out evidence/channels-vs-tp --no-doc; rc=$?
  echo "queue: torch-pruning $net ends $(date -u) rc=$rc"
done
