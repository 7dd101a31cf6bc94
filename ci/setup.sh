#!/usr/bin/env bash
# Installs what the build needs and is missing: Debian packages (apt) and a Python virtual
# environment with torch==2.11.0 (pip) under AUDIT_HOME, outside the source tree so it survives
# between runs. Skips everything already present; safe to run again.
set -euo pipefail
AUDIT_HOME=${AUDIT_HOME:-$HOME/.cache/audit}
VENV=$AUDIT_HOME/venv
TORCH_VERSION=2.11.0

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
