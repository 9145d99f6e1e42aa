#!/usr/bin/env bash
# Debian packages the project needs: clickhouse-server (18.16, the build reachable here),
# espeak-ng and sox (offline text-to-speech for prompts). Idempotent; root or sudo.
set -euo pipefail
need=()
command -v clickhouse-server >/dev/null 2>&1 || [ -x /usr/sbin/clickhouse-server ] || need+=(clickhouse-server)
command -v espeak-ng >/dev/null 2>&1 || need+=(espeak-ng)
command -v sox >/dev/null 2>&1 || need+=(sox)
[ ${#need[@]} -eq 0 ] && exit 0
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "installing Debian packages: ${need[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# policy-rc.d may refuse to start the packaged service; we never use it (the launcher starts ours).
$SUDO apt-get install -y -qq --no-install-recommends "${need[@]}"
