#!/usr/bin/env bash
# Stop the one-node Slurm cluster started by .ci/slurm-up.sh (slurmd, slurmctld, slurmdbd, mariadb, munged).
# Packages, configuration, job state and the accounting database are kept: slurm-up.sh starts it again.
#   sudo bash .ci/slurm-down.sh            # stop the daemons
#   sudo bash .ci/slurm-down.sh --wipe     # also forget queued jobs (slurmctld state) and the job history
set -euo pipefail

wipe=0
case "${1:-}" in
--wipe) wipe=1 ;;
"") ;;
*) echo "usage: $0 [--wipe]" >&2 && exit 2 ;;
esac
[[ ${EUID} -eq 0 ]] || { echo "slurm-down: must run as root" >&2; exit 1; }

# stop PIDFILE NAME: SIGTERM the daemon whose pid is in PIDFILE (if it is NAME) and wait for it.
stop() {
    local pidfile=$1 name=$2 pid
    [[ -s "$pidfile" ]] || return 0
    pid=$(<"$pidfile")
    [[ "$pid" =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null || return 0
    [[ "$(cat "/proc/$pid/comm" 2>/dev/null)" == "$name" ]] || return 0
    echo "slurm-down: stopping $name (pid $pid)"
    kill "$pid"
    for _ in $(seq 1 40); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.5
    done
    echo "slurm-down: $name (pid $pid) still running after 20 s" >&2
    return 1
}

rc=0
stop /run/slurmd.pid slurmd || rc=1
stop /run/slurmctld.pid slurmctld || rc=1
stop /run/slurmdbd.pid slurmdbd || rc=1
if command -v mysqladmin >/dev/null && mysqladmin --silent ping >/dev/null 2>&1; then
    if ((wipe)); then
        echo "slurm-down: dropping the accounting database"
        mysql --batch -e "DROP DATABASE IF EXISTS slurm_acct_db" || rc=1
    fi
    echo "slurm-down: stopping mariadb"
    mysqladmin shutdown || rc=1
fi
stop /run/munge/munged.pid munged || rc=1
if ((wipe)); then
    echo "slurm-down: removing slurmctld/slurmd state"
    rm -rf /var/lib/slurm/slurmctld/* /var/lib/slurm/slurmd/*
fi
exit "$rc"
