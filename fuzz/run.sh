#!/usr/bin/env bash
# fuzz/run.sh [SECONDS] [TARGET...]: builds the fuzz targets with libFuzzer's coverage
# instrumentation on the stable toolchain (plain -C flags: no nightly, no cargo-fuzz),
# replays every committed regression input, then fuzzes each target for SECONDS (default
# 60), starting from the committed seeds. A crash stops the run with its input saved under
# fuzz/artifacts/TARGET/; move it to fuzz/regressions/TARGET/ with the fix.
set -euo pipefail
cd "$(dirname "$0")"
seconds=${1:-60}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(pem kubeconfig kube_list glob cli http_request jks pkcs12)
cache=${XDG_CACHE_HOME:-$HOME/.cache}/x509-exporter-fuzz
export CARGO_TARGET_DIR=$cache/target
export RUSTFLAGS="--cfg fuzzing -Cpasses=sancov-module \
 -Cllvm-args=-sanitizer-coverage-level=4 \
 -Cllvm-args=-sanitizer-coverage-inline-8bit-counters \
 -Cllvm-args=-sanitizer-coverage-pc-table \
 -Cllvm-args=-sanitizer-coverage-trace-compares"
# An explicit --target keeps the instrumentation out of build scripts and proc macros.
triple=$(rustc -vV | sed -n 's/^host: //p')
cargo build --locked --release --bins --target "$triple"
for target in "${targets[@]}"; do
  bin=$CARGO_TARGET_DIR/$triple/release/$target
  if compgen -G "regressions/$target/*" >/dev/null; then
    inputs=(regressions/"$target"/*)
    replay=0
    out=$("$bin" -runs=1 "${inputs[@]}" 2>&1) || replay=$?
    ran=$(grep -c '^Executed ' <<<"$out" || true)
    if [ "$replay" -ne 0 ] || [ "$ran" -ne ${#inputs[@]} ]; then
      tail -n 40 <<<"$out" >&2
      echo "$target: libFuzzer exit $replay, $ran of ${#inputs[@]} regression inputs ran" >&2
      exit 1
    fi
    echo "== $target: replayed ${#inputs[@]} regression inputs"
  fi
  [ "$seconds" -gt 0 ] || continue
  work=$cache/corpus/$target
  mkdir -p "$work" "artifacts/$target"
  echo "== $target: fuzzing for ${seconds}s"
  status=0
  "$bin" "$work" "seeds/$target" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
    -max_len=65536 -artifact_prefix="artifacts/$target/" -print_final_stats=1 \
    >"$cache/$target.log" 2>&1 || status=$?
  grep -E '^stat::(number_of_executed_units|new_units_added|peak_rss_mb)' "$cache/$target.log" || true
  if [ "$status" -ne 0 ] || compgen -G "artifacts/$target/*" >/dev/null; then
    tail -n 40 "$cache/$target.log" >&2
    echo "$target: libFuzzer exit $status; inputs in fuzz/artifacts/$target/" >&2
    exit 1
  fi
done
