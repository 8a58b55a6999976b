#!/usr/bin/env bash
# Installs what the project needs on a fresh Debian machine; safe to run again (does nothing new).
#   bash ops/install.sh          a township or county server: runtime packages, the PostgreSQL driver
#   bash ops/install.sh --test   plus what the test suite needs (PostgreSQL 15 server, promtool, test extras)
set -euo pipefail
cd "$(dirname "$0")/.."

want_test=0
[[ "${1:-}" == "--test" ]] && want_test=1

apt_packages=()
# Notice PDFs (WeasyPrint) on the township and county servers: Pango lays out the text, Noto CJK sets the Chinese.
[[ -e /usr/lib/x86_64-linux-gnu/libpangoft2-1.0.so.0 || -e /usr/lib/aarch64-linux-gnu/libpangoft2-1.0.so.0 ]] \
  || apt_packages+=(libpango-1.0-0 libpangoft2-1.0-0)
[[ -d /usr/share/fonts/opentype/noto ]] || apt_packages+=(fonts-noto-cjk)
if [[ $want_test == 1 ]]; then
  [[ -x /usr/lib/postgresql/15/bin/postgres ]] || apt_packages+=(postgresql-15)
  # Browser tests: Debian's Chromium, driven by Playwright; CJK fonts so Chinese renders in screenshots.
  [[ -x /usr/bin/chromium ]] || apt_packages+=(chromium)
  # promtool checks the shipped alert rules (ops/prometheus/) and the /metrics output.
  command -v promtool >/dev/null || apt_packages+=(prometheus)
  # pdftotext reads each archived notice PDF in the documents' tests, as an archivist's tools would.
  command -v pdftotext >/dev/null || apt_packages+=(poppler-utils)
fi
if (( ${#apt_packages[@]} )); then
  if [[ $(id -u) == 0 ]]; then
    echo "== 安装系统软件包：${apt_packages[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${apt_packages[@]}" >/dev/null
  else
    echo "缺少系统软件包：${apt_packages[*]}（请用 root 运行本脚本或手动安装）" >&2
    exit 1
  fi
fi

PY=${PYTHON:-python3}
if [[ ! -x .venv/bin/python ]]; then
  echo "== 创建 Python 虚拟环境 .venv"
  "$PY" -m venv .venv
fi

# The servers' database driver and the notices' PDF engine always: the guide's production path is a
# postgresql+psycopg:// URL, and township and county archive every notice as a PDF.
extras="[postgres,pdf]"
[[ $want_test == 1 ]] && extras="[postgres,pdf,test]"
stamp=".venv/.installed${extras}"
fingerprint=$(cat pyproject.toml | sha256sum | cut -d' ' -f1)
if [[ ! -f "$stamp" || "$(cat "$stamp")" != "$fingerprint" ]]; then
  echo "== 安装 Python 依赖 ${extras}"
  # pip's output goes to a log; it is shown only when the install fails.
  if ! { .venv/bin/python -m pip install -q --upgrade pip && .venv/bin/python -m pip install -q -e ".${extras}"; } >.venv/pip.log 2>&1; then
    cat .venv/pip.log >&2
    echo "Python 依赖安装失败（见上方 pip 输出）" >&2
    exit 1
  fi
  .venv/bin/python -c "import shared, village_agent, town_center, hub, psycopg"
  echo "$fingerprint" > "$stamp"
fi
