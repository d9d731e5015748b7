#!/bin/sh
# Runs every Go fuzz target in the module for a bounded time each, goes on
# after a failure, and exits non-zero if any target failed. New crashers
# land in the package's testdata/fuzz/ (commit them with the fix).
set -u
t=${1:-30s}
failed=""
for pkg in $(go list ./...); do
  dir=$(go list -f '{{.Dir}}' "$pkg")
  for f in $(grep -ho '^func Fuzz[A-Za-z0-9_]*' "$dir"/*_test.go 2>/dev/null | sed 's/^func //' | sort -u); do
    echo "== $pkg $f ($t)"
    go test -run '^$' -fuzz "^$f\$" -fuzztime "$t" "$pkg" || failed="$failed $pkg.$f"
  done
done
if [ -n "$failed" ]; then
  echo "fuzz: FAILED:$failed"
  exit 1
fi
echo "fuzz: every target ran for $t without a failure"
