#!/usr/bin/env bash
# Builds the FLOW_* parser fuzzer (libFuzzer + ASan + UBSan, with the Swift toolchain's clang or any
# clang that ships libFuzzer) and runs it from the seed corpus. Extra arguments go to libFuzzer, e.g.
#   Tests/Fuzz/run.sh -runs=10000000        (CI: a short smoke with -runs=200000)
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
out=${FUZZ_OUT:-$root/.build-fuzz}
mkdir -p "$out/corpus"
clang -std=c11 -g -O1 -D_GNU_SOURCE -Wall -Wextra -Werror \
    -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
    -I "$root/Sources/CFlow/include" -I "$root/Sources/CFlow" \
    "$root/Tests/Fuzz/fuzz_config.c" "$root/Sources/CFlow/config.c" "$root/Sources/CFlow/base.c" \
    -o "$out/fuzz_config"
# new inputs go to $out/corpus (not committed); the seeds in Tests/Fuzz/corpus are read only
"$out/fuzz_config" -max_len=256 -print_final_stats=1 "$@" "$out/corpus" "$root/Tests/Fuzz/corpus"
