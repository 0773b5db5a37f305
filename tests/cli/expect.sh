#!/usr/bin/env bash
# Runs a command and checks both its exit status and its output (stdout and stderr together):
#   expect.sh EXIT REGEX COMMAND [ARGS...]
# EXIT is a number or "fail" (any non-zero status); REGEX is an extended regular expression that
# must match somewhere in the output, across lines ('.' matches newlines too).
set -uo pipefail
expected=$1 regex=$2
shift 2
output=$("$@" 2>&1)
status=$?
printf '%s\n' "$output"
if [[ $expected == fail ]]; then
  if [[ $status -eq 0 ]]; then echo "expect.sh: the command succeeded, but it should have failed" >&2; exit 1; fi
elif [[ $status -ne $expected ]]; then
  echo "expect.sh: exit status $status, expected $expected" >&2; exit 1
fi
if ! printf '%s' "$output" | grep -qzE -- "$regex"; then
  echo "expect.sh: the output does not match: $regex" >&2; exit 1
fi
