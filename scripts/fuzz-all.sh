#!/bin/sh
# Runs every Go fuzz target in the module for a bounded time each, goes on
# after a failure, and exits non-zero if any target found a failing input.
# A crasher lands in the package's testdata/fuzz/FuzzX/ (commit it with the
# fix). Go's fuzzer can also stop with "context deadline exceeded" when the
# time runs out while it minimises a new interesting (not failing) input;
# without a new crasher file that is not a failure.
set -u
t=${1:-30s}
failed=""
for pkg in $(go list ./...); do
  dir=$(go list -f '{{.Dir}}' "$pkg")
  for f in $(grep -ho '^func Fuzz[A-Za-z0-9_]*' "$dir"/*_test.go 2>/dev/null | sed 's/^func //' | sort -u); do
    echo "== $pkg $f ($t)"
    corpus="$dir/testdata/fuzz/$f"
    before=$(ls "$corpus" 2>/dev/null | wc -l)
    if ! out=$(go test -run '^$' -fuzz "^$f\$" -fuzztime "$t" -fuzzminimizetime 10s "$pkg" 2>&1); then
      after=$(ls "$corpus" 2>/dev/null | wc -l)
      if [ "$after" -eq "$before" ] && printf '%s' "$out" | grep -q 'context deadline exceeded'; then
        echo "$f: time ran out while minimising an interesting input (no failure found)"
      else
        printf '%s\n' "$out" | tail -20
        failed="$failed $pkg.$f"
      fi
    else
      printf '%s\n' "$out" | tail -2
    fi
  done
done
if [ -n "$failed" ]; then
  echo "fuzz: FAILED:$failed"
  exit 1
fi
echo "fuzz: every target ran for $t without a failure"
