#!/usr/bin/env bash
# Run the lab's failure scenarios against this Compose project (its containers are started
# for the run, and taken down after, when they are not already up):
#   compose/scenario.sh                      # every scenario
#   compose/scenario.sh shard-down dc-partition --scale 0.5
#   compose/scenario.sh --list
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
if [ "${1:-}" = "--list" ]; then
  exec python3 -m pymc lab scenario list
fi
exec python3 -m pymc lab scenario run --dir "$here" "$@"
