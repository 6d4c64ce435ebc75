#!/bin/bash
# Session 19 (fourth form): waits for the running suite process, then per net the edge suite's
# seeds 0-2 (the cells still missing: seeds 1 and 2, and legc_default_same_zeros on every seed;
# on DS-CNN and MobileNet legc_default_block forced again, now that it leaves depthwise kernels
# dense), then the Torch-Pruning comparison on the same dense checkpoints. One job at a time:
# both time LiteRT latency.
cd /work/main
source .venv/bin/activate
export LEGC_DATA_DIR=/work/shared/data
S="python tools/edge_suite.py --out evidence/edge-suite --no-doc --device-python .venv-device/bin/python"
while pgrep -f "tools/edge_suite.py|tools/channels_vs_torch_pruning.py" >/dev/null; do sleep 10; done
for net in ds_cnn resnet8 mobilenet_v1_025; do
  echo "queue-s19d: suite $net starts $(date -u)"
  if [ $net != resnet8 ] && [ ! -f runs/block-forced-$net ]; then
    $S --nets $net --seeds 0,1,2 --methods legc_default_block --force; rc=$?
    echo "queue-s19d: block forced $net rc=$rc $(date -u)"
    [ $rc = 0 ] && touch runs/block-forced-$net
  fi
  $S --nets $net --seeds 0,1,2; rc=$?
  echo "queue-s19d: suite $net ends $(date -u) rc=$rc"
  python tools/channels_vs_torch_pruning.py --nets $net --seeds 0,1,2 --criteria l2 --factors 1.5,2,3 --cache evidence/edge-suite/dense-cache --out evidence/channels-vs-tp --no-doc; rc=$?
  echo "queue-s19d: torch-pruning $net ends $(date -u) rc=$rc"
done
