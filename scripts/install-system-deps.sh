#!/usr/bin/env bash
# System packages netan's tests, demo recording and benchmarks need (Debian).
# Idempotent: installs only what is missing. Needs root (or sudo).
set -euo pipefail
pkgs=(tshark tcpdump ent libndpi-bin tcpreplay iproute2 openssl chromium fonts-dejavu-core ethtool dnsmasq-base udhcpc)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
echo "wireshark-common wireshark-common/install-setuid boolean false" | $SUDO debconf-set-selections
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
