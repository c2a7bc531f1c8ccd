#!/usr/bin/env bash
# Install HAProxy from Debian's packages when it is missing (the replica tests run it on loopback).
set -euo pipefail
if ! command -v haproxy >/dev/null 2>&1; then
  echo "HAProxy is not installed; installing it from Debian's packages"
  apt-get update -qq
  # policy-rc.d 101: the package must not start its own system service.
  printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d.repic && chmod +x /usr/sbin/policy-rc.d.repic
  if [[ ! -e /usr/sbin/policy-rc.d ]]; then ln -s /usr/sbin/policy-rc.d.repic /usr/sbin/policy-rc.d; fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq haproxy >/dev/null
  if [[ -L /usr/sbin/policy-rc.d && "$(readlink /usr/sbin/policy-rc.d)" == /usr/sbin/policy-rc.d.repic ]]; then
    rm -f /usr/sbin/policy-rc.d
  fi
  rm -f /usr/sbin/policy-rc.d.repic
fi
# sed reads the whole version text: `head -n1` would close the pipe early, and under pipefail
# haproxy's SIGPIPE (exit 141) would fail the script.
haproxy -v | sed -n 1p
