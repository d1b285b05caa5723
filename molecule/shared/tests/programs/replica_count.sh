# Restore the replica to a scratch file as Litestream's account (with the
# unit's credentials, if any) and print the count it holds: proof that the
# replica, not the local file, has the data.
#   bash -c "$(cat replica_count.sh)" - ENV_FILE USER LITESTREAM CONFIG DB VENV_PYTHON
set -e
env_file=$1 user=$2 litestream=$3 config=$4 db=$5 py=$6
out=$(mktemp -u /var/tmp/replica-check.XXXXXX.db)
set -a; [ ! -r "$env_file" ] || . "$env_file"; set +a
runuser -u "$user" -- "$litestream" restore -config "$config" -o "$out" "$db" >&2
"$py" -c 'import apsw, sys
print(apsw.Connection(sys.argv[1]).execute("SELECT count FROM visits").fetchone()[0])' "$out"
rm -f "$out" "$out-wal" "$out-shm"
