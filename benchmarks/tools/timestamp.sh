#!/usr/bin/env bash
# Run a command and prefix each line of its output (stdout and stderr) with the seconds since it started, e.g. the
# per-stage timeline of a fresh clone's pipeline run:   bash benchmarks/tools/timestamp.sh make repro | tee repro.log
# (pure bash 5: EPOCHREALTIME, no bc / awk needed)
start=${EPOCHREALTIME/./}
"$@" 2>&1 | while IFS= read -r line; do
  d=$(( ${EPOCHREALTIME/./} - start ))
  printf "%5d.%d %s\n" $(( d / 1000000 )) $(( d / 100000 % 10 )) "$line"
done
exit "${PIPESTATUS[0]}"
