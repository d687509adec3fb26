#!/usr/bin/env bash
# Run every fuzz target for SECONDS (default 300), seeded from the bundled sample logs.
#   bash fuzz/run.sh [SECONDS] [TARGET...]
# Needs cargo-fuzz (`cargo install cargo-fuzz`); RUSTC_BOOTSTRAP lets the stable
# toolchain accept the sanitizer flags. Prints libFuzzer's last status line per target.
set -euo pipefail
cd "$(dirname "$0")"
secs=${1:-300}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(format_string templates presets timestamp mining syslog_stream event_codec)
export RUSTC_BOOTSTRAP=1
logs=../examples/quickstart/logs
seed() {
  local dir=corpus/$1 t f
  mkdir -p "$dir"
  [ -n "$(ls -A "$dir" 2>/dev/null)" ] && return
  case $1 in
    presets)
      for f in "$logs"/*.log; do head -n 40 "$f" | split -l 1 - "$dir/$(basename "$f" .log)-"; done ;;
    format_string)
      printf '{timestamp} {level} [{logger}] [{trace_id}] {message}\n\n%s\n' "$(head -n 20 "$logs/payments.log")" > "$dir/python"
      printf '{timestamp} [{thread}] [traceId={trace_id}] {level} {logger} - {message}\n\n%s\n' "$(head -n 20 "$logs/orders.log")" > "$dir/log4j"
      printf '{ip:ip} {n:int} {f:float} {h:hex} {message}\n%%d.%%m.%%Y %%H:%%M:%%S\n10.0.0.1 5 0.5 ff rest\n' > "$dir/typed" ;;
    templates)
      printf 'Payment failed for user {user_id:int}: {error}\nOrder {order_id} submitted in {duration_ms:int}ms\nhealth check ok\n{any}\n\nPayment failed for user 42: Card declined\nOrder ORD-1 submitted in 5ms\nhealth check ok\n' > "$dir/basic" ;;
    syslog_stream)
      printf '\x05<13>1 2026-11-30T10:00:00Z h app 1 M - hi\n23 <14>with\nnewline inside\n<15>Nov 30 10:00:00 h app[1]: x\n' > "$dir/basic" ;;
    mining)
      for f in "$logs"/*.log; do head -n 30 "$f" > "$dir/$(basename "$f" .log)"; done
      printf 'Payment failed for user 42: Card declined\nsession opened for user alice\nsession opened for user bob\nx=1 y=abc.def.com z="q 1" 10.0.0.1:80 blk_-5 (a) [] 3 ms\n' > "$dir/basic" ;;
    timestamp)
      for t in '2026-11-21T02:14:33.123+01:00' '2026-11-21 02:14:33,123' '2026/11/21 02:14:33.123456' '21/Nov/2026:02:14:33 +0000' 'Nov  1 02:14:33' '1795314873123' $'%d.%m.%Y %H:%M:%S\n21.11.2026 02:14:33'; do
        printf '%s' "$t" > "$dir/$(printf '%s' "$t" | md5sum | cut -c1-8)"
      done ;;
  esac
}
cargo fuzz build -O
for t in "${targets[@]}"; do
  seed "$t"
  echo "== $t ($secs s)"
  cargo fuzz run -O "$t" "corpus/$t" -- -max_total_time="$secs" -max_len=4096 -timeout=5 -rss_limit_mb=2048 2>&1 \
    | grep -E '^#[0-9]+.*(DONE|pulse|NEW|REDUCE)' | tail -n 1
done
