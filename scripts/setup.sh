#!/usr/bin/env bash
# Installs every build and run dependency of v2m from Debian's archive.
# Idempotent: checks what is installed and runs apt-get only when something is missing.
set -euo pipefail

PKGS=(
  build-essential cmake pkg-config ccache git
  libtorch-dev libopenblas0-pthread libgloo-dev
  libopencv-dev
  libavformat-dev libavcodec-dev libavutil-dev libswresample-dev libswscale-dev
  libcli11-dev libspdlog-dev nlohmann-json3-dev libyaml-cpp-dev
  libgtest-dev libgmock-dev
  libfluidsynth-dev timgm6mb-soundfont
  python3 python3-numpy
)

missing=()
for p in "${PKGS[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: all ${#PKGS[@]} packages present"
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
echo "setup: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
