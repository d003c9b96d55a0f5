#!/usr/bin/env bash
# Resident memory of `kb-usage import FILE --state DIR --follow` while FILE grows by 100,000
# rows a second for SECONDS seconds (default 30), against `kb-usage serve` on 127.0.0.1:18091;
# prints one line per second, then the import's summary and exit code.
#
#   cargo build --release -p usage-cli && bash crates/usage-meter/benches/follow_memory.sh [SECONDS]
set -euo pipefail
SECONDS_TO_RUN=${1:-30}
B=$(cd "$(dirname "$0")/../../.." && pwd)/target/release/kb-usage
WORK=$(mktemp -d)
export KILLBILL_URL=http://127.0.0.1:18091
"$B" serve --listen 127.0.0.1:18091 --auto-provision >"$WORK/serve.log" 2>&1 &
SERVE=$!
trap 'kill $SERVE 2>/dev/null; rm -rf "$WORK"' EXIT
sleep 1
mkdir -p "$WORK/data"
FILE=$WORK/data/usage.csv
echo "subscription_id,unit_type,record_date,amount" >"$FILE"
"$B" import "$FILE" --state "$WORK/state" --follow 2>"$WORK/import.log" &
IMPORT=$!
for second in $(seq 1 "$SECONDS_TO_RUN"); do
  awk -v from=$(( (second - 1) * 100000 )) 'BEGIN {
    for (i = from; i < from + 100000; i++)
      printf "8b9c1e0e-5a0b-4d47-9a7e-1f3c2c8f4a1%d,gallons,2013-08-%02dT00:00:00.%03dZ,%d\n", i % 4, 1 + i % 28, i % 1000, 1 + i % 7
  }' >>"$FILE"
  sleep 1
  echo "t=${second}s rows_written=$((second * 100000)) rss_kb=$(awk '/VmRSS/{print $2}' /proc/$IMPORT/status) spool_kb=$(du -sk "$WORK/state" | cut -f1)"
done
kill -TERM $IMPORT
wait $IMPORT && echo "import exit 0" || echo "import exit $?"
