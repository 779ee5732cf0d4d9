#!/usr/bin/env bash
# One-time set-up on a fresh machine: the fonts of the glyph and emoji benchmarks and the chromium of the
# web app's browser test (Debian packages), a virtual environment in .venv, and vqi2i installed into it
# with its dev, bench, app and tb (TensorBoard) extras.
set -euo pipefail
cd "$(dirname "$0")/.."

# (fc-list's output is captured first: with pipefail, `fc-list | grep -q` fails when grep stops reading early)
FONTS=$(fc-list 2>/dev/null || true)
if command -v apt-get >/dev/null 2>&1 && ! (grep -q "AR PL UKai" <<<"$FONTS" && grep -q "AR PL UMing" <<<"$FONTS" \
    && grep -q "Noto Color Emoji" <<<"$FONTS" && grep -q "WenQuanYi Zen Hei" <<<"$FONTS" && [ -x /usr/bin/chromium ]); then
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  echo "installing fonts-arphic-uming fonts-arphic-ukai fonts-noto-color-emoji fonts-wqy-zenhei (benchmark data) chromium (browser test)"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq fonts-arphic-uming fonts-arphic-ukai fonts-noto-color-emoji \
    fonts-wqy-zenhei fontconfig chromium >/dev/null
fi

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install -q -e ".[dev,bench,app,tb]"
echo "vqi2i is installed in .venv ($(.venv/bin/python -c 'import torch; print("torch", torch.__version__)'))"
