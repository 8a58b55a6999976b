#!/usr/bin/env bash
# 村代办员笔记本：输入口令，启动 village-agent 用户服务（ops/systemd/village-agent.service），打开本机网页。
# The passphrase goes only to $XDG_RUNTIME_DIR (RAM, this user only, gone at logout or power-off):
# never to the disk, so a stolen laptop does not unlock itself.
set -euo pipefail
runtime="${XDG_RUNTIME_DIR:?没有 XDG_RUNTIME_DIR：请在代办员本人的桌面会话中运行}"
umask 077
mkdir -p "$runtime/quancheng"
if ! systemctl --user is-active --quiet village-agent; then
  read -rsp "请输入本机口令：" passphrase
  echo
  printf '%s' "$passphrase" > "$runtime/quancheng/passphrase"
  unset passphrase
  systemctl --user start village-agent
fi
sleep 2
if ! systemctl --user is-active --quiet village-agent; then
  rm -f "$runtime/quancheng/passphrase"
  echo "启动失败（口令错误或数据目录有问题）。查看原因：journalctl --user -u village-agent -n 30" >&2
  exit 1
fi
echo "已启动：http://127.0.0.1:8631/"
command -v xdg-open >/dev/null && xdg-open "http://127.0.0.1:8631/" >/dev/null 2>&1 || true
