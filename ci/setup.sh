#!/usr/bin/env bash
# Installs what the build needs and is missing: Debian packages (apt) and a Python virtual
# environment with torch==2.11.0 and the pinned Hugging Face packages (pip) under AUDIT_HOME,
# outside the source tree so it survives between runs. Skips everything already present; safe to
# run again. The Hugging Face packages are the peers the tests compare against (transformers'
# forward pass and chat templates, tokenizers' ids) and make the tests' tiny models and
# tokenizers with; nothing is downloaded from a model hub.
set -euo pipefail
AUDIT_HOME=${AUDIT_HOME:-$HOME/.cache/audit}
VENV=$AUDIT_HOME/venv
TORCH_VERSION=2.11.0
# accelerate: the Hugging Face Trainer of the [launch] test fixture (torchrun, Gloo). mlflow-skinny
# and mlperf-logging: the readers the MLflow and MLPerf log exports are checked against.
HF_PINS=(transformers==5.24.0 tokenizers==0.23.3 safetensors==0.8.0 jinja2==3.1.6
         accelerate==1.15.0 mlflow-skinny==3.17.2 mlperf-logging==4.1.68)

pkgs=(build-essential cmake ninja-build ccache git pkg-config python3-venv
      libsqlite3-dev sqlite3 libssl-dev libcli11-dev libtomlplusplus-dev nlohmann-json3-dev
      libgtest-dev libgmock-dev libbenchmark-dev libpcre2-dev libicu-dev chromium)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing Debian packages: ${missing[*]}"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}"
fi

mkdir -p "$AUDIT_HOME"
if [ ! -x "$VENV/bin/python3" ]; then
  echo "setup: creating Python venv in $VENV"
  python3 -m venv "$VENV"
fi
if ! "$VENV/bin/python3" -c "import torch, numpy, sys; sys.exit(0 if torch.__version__.startswith('$TORCH_VERSION') else 1)" 2>/dev/null; then
  echo "setup: installing torch==$TORCH_VERSION into $VENV (large download, once)"
  "$VENV/bin/pip" install -q "torch==$TORCH_VERSION" numpy
fi
# The pins, checked by their installed versions (pip's own check is slow).
hf_ok=$("$VENV/bin/python3" - "${HF_PINS[@]}" <<'PY' 2>/dev/null || echo no
import sys
from importlib.metadata import version, PackageNotFoundError
for pin in sys.argv[1:]:
    name, want = pin.split("==")
    try:
        if version(name) != want: print("no"); sys.exit()
    except PackageNotFoundError:
        print("no"); sys.exit()
print("yes")
PY
)
if [ "$hf_ok" != yes ]; then
  echo "setup: installing ${HF_PINS[*]} into $VENV"
  "$VENV/bin/pip" install -q "${HF_PINS[@]}"
fi
