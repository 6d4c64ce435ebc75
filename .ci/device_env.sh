#!/usr/bin/env bash
# Creates the minimal device-side virtualenv used by CI to prove that edge/ runs without TensorFlow:
# only numpy 1.26 and tflite-runtime 2.14 (its last release, which needs numpy 1). Usage:
#   bash .ci/device_env.sh [VENV_DIR]     (default .venv-device)
# Prints the venv's python path on its last line. Idempotent: an existing complete env is reused.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${1:-.venv-device}"
PYTHON="${PYTHON_DEVICE:-python3.11}"
STAMP="$VENV/.legc-device-installed"
if [ ! -f "$STAMP" ]; then
  test -x "$VENV/bin/python" || "$PYTHON" -m venv "$VENV"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
    numpy==1.26.4 tflite-runtime==2.14.0
  # Nothing else: TensorFlow must not be importable on the device side.
  if "$VENV/bin/python" -c "import tensorflow" 2>/dev/null; then
    echo "device_env.sh: TensorFlow is importable in $VENV; it must not be" >&2
    exit 1
  fi
  touch "$STAMP"
fi
echo "$PWD/$VENV/bin/python"
