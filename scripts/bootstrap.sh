#!/usr/bin/env bash
# Installs what the deployer, its sandbox and its tests need on a fresh Debian
# machine, as root: system packages, then the project's virtualenv (.venv).
#   scripts/bootstrap.sh [requirements file]     (default: requirements.txt)
set -euo pipefail
cd "$(dirname "$0")/.."
requirements=${1:-requirements.txt}

packages=()
[ -x /usr/sbin/sshd ] || packages+=(openssh-server)
command -v ssh-keygen >/dev/null || packages+=(openssh-client)
command -v git >/dev/null || packages+=(git)
/usr/bin/python3 -c 'import venv, ensurepip' 2>/dev/null || packages+=(python3-venv)
command -v runuser >/dev/null || packages+=(util-linux)
command -v ss >/dev/null || packages+=(iproute2)
[ -x /usr/sbin/nginx ] || packages+=(nginx)
command -v shellcheck >/dev/null || packages+=(shellcheck)  # tests/test_remote_scripts.py
command -v iptables >/dev/null || packages+=(iptables)  # tests/test_build_once.py: hosts refused the index
# The tests start a throwaway PostgreSQL cluster for the shared history store.
compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || packages+=(postgresql)
# The dashboard's browser tests drive Debian's Chromium headless (tests only).
if [ "$requirements" = requirements-dev.txt ]; then
  command -v chromium >/dev/null || packages+=(chromium)
  command -v chromedriver >/dev/null || packages+=(chromium-driver)
fi
if [ ${#packages[@]} -gt 0 ]; then
  echo "bootstrap: installing ${packages[*]}"
  # Installing a server package must not start a system-wide service here.
  created_policy=""
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
    chmod +x /usr/sbin/policy-rc.d
    created_policy=yes
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
  [ -z "$created_policy" ] || rm -f /usr/sbin/policy-rc.d
fi

if [ ! -x .venv/bin/python ]; then
  echo "bootstrap: creating .venv"
  python3 -m venv .venv
fi
stamp=".venv/.installed-$(cat "$requirements" requirements.txt | sha256sum | cut -c1-16)"
if [ ! -e "$stamp" ]; then
  echo "bootstrap: installing $requirements"
  # Byte-compiled here, once (no --no-compile): with PYTHONDONTWRITEBYTECODE set, as
  # it may be, every `fab` the tests run would compile its imports all over again.
  .venv/bin/pip install --quiet --disable-pip-version-check -r "$requirements"
  touch "$stamp"
fi
# The deployer's own modules, byte-compiled where `fab` imports them from this checkout:
# with PYTHONDONTWRITEBYTECODE set, every run would compile them again (~0.15 s).
.venv/bin/python -m compileall -q fab fabfile.py >/dev/null
