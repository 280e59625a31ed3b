#!/bin/sh
# Instructions per request of the session bench's cases, counted by callgrind: steady
# where wall-clock times drift (BENCHMARKS.md, "Overheads over the bare route").
#
#   scripts/instructions.sh [requests per case]      (needs valgrind; default 2000)
#
# Builds benches/session.rs without the `redis` feature (no Redis server to start, and
# none to time out under valgrind's slowness), then runs it once per case in counting
# mode (HF_AUTH_COUNT): only the case's requests, inside `measured`, are counted.
set -eu
n=${1:-2000}
cd "$(dirname "$0")/.."
command -v valgrind >/dev/null || { echo "valgrind is missing (Debian: apt-get install valgrind)" >&2; exit 1; }
bin=$(cargo bench --features axum,mock,metrics --bench session --no-run --message-format=json 2>/dev/null |
    python3 -c 'import json,sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "session" and m.get("executable"):
        print(m["executable"])')
out=$(mktemp -d)
count() {
    HF_AUTH_COUNT=$1 HF_AUTH_COUNT_N=$n valgrind --tool=callgrind --toggle-collect='*measured*' \
        --callgrind-out-file="$out/cg" "$bin" --bench >"$out/log" 2>&1 ||
        { cat "$out/log" >&2; exit 1; }
    total=$(grep -m1 -E '^(summary|totals):' "$out/cg" | awk '{print $2}')
    echo $((total / n))
}
printf '%-26s %12s %12s\n' case instructions "over bare"
for profile in 2_orgs 41_orgs; do
    bare=$(count "bare/$profile")
    printf '%-26s %12s\n' "bare/$profile" "$bare"
    for case in hit miss bearer_hit; do
        i=$(count "$case/$profile")
        printf '%-26s %12s %12s\n' "$case/$profile" "$i" $((i - bare))
    done
done
none=$(count none)
three=$(count three_passing)
printf '%-26s %12s\n' "guards/none" "$none"
printf '%-26s %12s %12s\n' "guards/three_passing" "$three" "$(((three - none) / 3)) each"
none=$(count alone_none)
three=$(count alone_three_passing)
printf '%-26s %12s\n' "guards/alone_none" "$none"
printf '%-26s %12s %12s\n' "guards/alone_three_passing" "$three" "$(((three - none) / 3)) each"
rm -r "$out"
