#!/usr/bin/env bash
# Installs every Debian 12 package needed to build Tandem and run its tests.
# Idempotent: packages already present are left alone.
set -euo pipefail

packages=(
  build-essential cmake pkg-config git
  libboost1.81-dev libfmt-dev libspdlog-dev doctest-dev
  libsqlite3-dev libedit-dev
  libspandsp-dev libopus-dev libspeex-dev libspeexdsp-dev libbcg729-dev libsndfile1-dev
  libsofia-sip-ua-dev libssl-dev sip-tester
  libsrtp2-dev libjemalloc-dev
  baresip-core linphone-cli openssl
  espeak-ng sox lame
  procps python3
)

if [ "$(id -u)" -ne 0 ]; then
  SUDO=sudo
else
  SUDO=
fi

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update
  $SUDO apt-get install -y --no-install-recommends "${missing[@]}"
fi
