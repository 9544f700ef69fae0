#!/usr/bin/env bash
# deploy/backup_gateway.sh GATEWAY.yaml DIR KEEP: a checked backup of the gateway's SQLite database in DIR, named by
# its time (gateway-2026-12-07-030000.sqlite), then of those names only the newest KEEP are left. What
# xueliang-gateway-backup.service runs each night; by hand too. A backup that fails removes nothing (its error:
# and exit status are the gateway's: 2); files of other names in DIR are never touched.
set -euo pipefail

if [ $# -ne 3 ]; then
  echo "usage: $0 GATEWAY.yaml DIR KEEP (how many backups to keep, the newest)" >&2
  exit 2
fi
config=$1 dir=$2 keep=$3
if ! [[ $keep =~ ^[1-9][0-9]{0,5}$ ]]; then
  echo "error: KEEP '$keep': not a number of backups to keep (1 or more; XUELIANG_BACKUP_KEEP)" >&2
  exit 2
fi
# beside the venv this script was installed with (/opt/xueliang), or a checkout's
xueliang=${XUELIANG:-$(cd "$(dirname "$0")/.." && pwd)/.venv/bin/xueliang}

# to the second: a second backup the same day (by hand, before an upgrade) is a new file, never refused as there
"$xueliang" gateway --config "$config" --backup "$dir/gateway-$(date +%Y-%m-%d-%H%M%S).sqlite"

# the names sort as their times do; only this script's names, never a copy someone kept there by another name
shopt -s nullglob
LC_COLLATE=C
backups=("$dir"/gateway-[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]-[0-9][0-9][0-9][0-9][0-9][0-9].sqlite)
old=$(( ${#backups[@]} - keep ))
for (( i = 0; i < old; i++ )); do
  rm -f -- "${backups[i]}"
  echo "removed ${backups[i]} (${keep} kept)"
done
