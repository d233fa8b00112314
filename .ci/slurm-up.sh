#!/usr/bin/env bash
# Start a real one-node Slurm cluster (slurmctld + slurmd + slurmdbd/MariaDB accounting) on this machine,
# for tests/test_slurm_cluster.py and CI.  Debian 12, run as root.  No systemd needed: daemons are started
# directly.  Idempotent: a second run only (re)starts what is not running and re-checks the cluster;
# if the generated configuration changed, the Slurm daemons are restarted.
#
#   sudo bash .ci/slurm-up.sh          # install + start + smoke test
#   sudo bash .ci/slurm-down.sh        # stop every daemon started here
#
# Tunables (environment): CI_SLURM_CPUS (8), CI_SLURM_MEM_MB (16000), CI_SLURM_DEF_MEM_PER_CPU (1000),
# CI_SLURM_PARTITION (debug), CI_SLURM_CLUSTER (ci), CI_SLURM_CRED_EXPIRE (10), CI_SLURM_MIN_JOB_AGE (30),
# CI_SLURM_SKIP_INSTALL=1 (do not call apt-get even if packages are missing).
# See docs/slurm-ci.md for why each setting is there.
set -Eeuo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
TEMPLATES="$HERE/slurm"

CPUS="${CI_SLURM_CPUS:-8}"
MEM_MB="${CI_SLURM_MEM_MB:-16000}"
DEF_MEM_PER_CPU="${CI_SLURM_DEF_MEM_PER_CPU:-1000}"
PARTITION="${CI_SLURM_PARTITION:-debug}"
CLUSTER="${CI_SLURM_CLUSTER:-ci}"
CRED_EXPIRE="${CI_SLURM_CRED_EXPIRE:-10}"
MIN_JOB_AGE="${CI_SLURM_MIN_JOB_AGE:-30}"
DB_NAME=slurm_acct_db
DB_USER=slurm
# Local-only database reachable through the unix socket; not a secret.
DB_PASS=slurm-ci

PACKAGES=(slurmctld slurmd slurm-client munge slurmdbd mariadb-server)
LOG_DIR=/var/log/slurm
MARIADB_LOG=/var/log/mysql/error.log  # written by the mysql user, hence not under $LOG_DIR
CONF_DIR=/etc/slurm
START_TS=$(date +%s)

log() { printf '[slurm-up %3ss] %s\n' "$(($(date +%s) - START_TS))" "$*"; }

tail_logs() {
    local f
    for f in "$LOG_DIR/slurmctld.log" "$LOG_DIR/slurmd.log" "$LOG_DIR/slurmdbd.log" "$MARIADB_LOG" \
        /var/log/munge/munged.log; do
        if [[ -s "$f" ]]; then
            echo "----- last lines of $f -----" >&2
            tail -n 20 "$f" >&2 || true
        fi
    done
}

die() {
    echo "slurm-up: ERROR: $*" >&2
    tail_logs
    exit 1
}

usage_error() {
    echo "slurm-up: ERROR: $*" >&2
    exit 2
}

on_err() {
    echo "slurm-up: ERROR: command failed (exit $1) at line $2: $3" >&2
    tail_logs
}
trap 'on_err $? $LINENO "$BASH_COMMAND"' ERR

# wait_for SECONDS DESCRIPTION COMMAND...: poll COMMAND every 0.5 s until it succeeds.
wait_for() {
    local secs=$1 what=$2 out
    shift 2
    local deadline=$(($(date +%s) + secs))
    until out=$("$@" 2>&1); do
        if (($(date +%s) >= deadline)); then
            die "timed out after ${secs}s waiting for: $what (last output: ${out:-none})"
        fi
        sleep 0.5
    done
}

# pid_alive PIDFILE NAME: the pid in PIDFILE is alive and is the NAME binary.
pid_alive() {
    local pidfile=$1 name=$2 pid
    [[ -s "$pidfile" ]] || return 1
    pid=$(<"$pidfile")
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    kill -0 "$pid" 2>/dev/null || return 1
    [[ "$(cat "/proc/$pid/comm" 2>/dev/null)" == "$name" ]]
}

# stop_pidfile PIDFILE NAME: SIGTERM the daemon and wait (up to 15 s) for it to exit.
stop_pidfile() {
    local pidfile=$1 name=$2 pid
    pid_alive "$pidfile" "$name" || return 0
    pid=$(<"$pidfile")
    log "stopping $name (pid $pid)"
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 30); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.5
    done
    die "$name (pid $pid) did not stop"
}

for v in CPUS MEM_MB DEF_MEM_PER_CPU CRED_EXPIRE MIN_JOB_AGE; do
    [[ "${!v}" =~ ^[1-9][0-9]*$ ]] || usage_error "CI_SLURM_$v must be a positive integer, got '${!v}'"
done
for v in PARTITION CLUSTER; do
    [[ "${!v}" =~ ^[a-z][a-z0-9_-]*$ ]] || usage_error "CI_SLURM_$v must match [a-z][a-z0-9_-]*, got '${!v}'"
done
[[ ${EUID} -eq 0 ]] || usage_error "must run as root (it installs packages and starts system daemons): sudo bash $0"

# ---------------------------------------------------------------------------------------------- packages
missing=()
for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
    if [[ "${CI_SLURM_SKIP_INSTALL:-0}" == 1 ]]; then
        die "missing packages: ${missing[*]} (CI_SLURM_SKIP_INSTALL=1)"
    fi
    log "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >/tmp/slurm-up-apt.log 2>&1 || { tail -n 20 /tmp/slurm-up-apt.log >&2; die "apt-get update failed"; }
    apt-get install -y -q --no-install-recommends "${PACKAGES[@]}" >>/tmp/slurm-up-apt.log 2>&1 ||
        { tail -n 30 /tmp/slurm-up-apt.log >&2; die "apt-get install failed (log: /tmp/slurm-up-apt.log)"; }
    log "packages installed"
else
    log "packages already installed"
fi
for b in munged mysqld_safe mysqladmin slurmdbd slurmctld slurmd sinfo sacct sacctmgr; do
    command -v "$b" >/dev/null || die "$b not found on PATH after install"
done

# ---------------------------------------------------------------------------------------------- hostname
HOST=$(uname -n)
HOST=${HOST%%.*}  # slurmd matches NodeName against the short hostname
[[ -n "$HOST" ]] || die "empty hostname"
if ! getent hosts "$HOST" >/dev/null; then
    log "adding $HOST to /etc/hosts"
    echo "127.0.0.1 $HOST" >>/etc/hosts
fi

# ---------------------------------------------------------------------------------------------- configs
install -d -m 0755 "$CONF_DIR" "$LOG_DIR" /var/lib/slurm/slurmctld /var/lib/slurm/slurmd
render() {
    sed -e "s|@HOST@|$HOST|g" -e "s|@CLUSTER@|$CLUSTER|g" -e "s|@PARTITION@|$PARTITION|g" \
        -e "s|@CPUS@|$CPUS|g" -e "s|@MEM_MB@|$MEM_MB|g" -e "s|@DEF_MEM_PER_CPU@|$DEF_MEM_PER_CPU|g" \
        -e "s|@CRED_EXPIRE@|$CRED_EXPIRE|g" -e "s|@MIN_JOB_AGE@|$MIN_JOB_AGE|g" \
        -e "s|@DB_NAME@|$DB_NAME|g" -e "s|@DB_USER@|$DB_USER|g" -e "s|@DB_PASS@|$DB_PASS|g" "$1"
}
# install_conf TEMPLATE DEST MODE: writes DEST if its content changed; prints "changed" then.
install_conf() {
    local tmp
    tmp=$(mktemp)
    render "$1" >"$tmp"
    if [[ -f "$2" ]] && cmp -s "$tmp" "$2"; then
        rm -f "$tmp"
    else
        install -m "$3" -o root -g root "$tmp" "$2"
        rm -f "$tmp"
        echo changed
    fi
}
slurm_changed=$(install_conf "$TEMPLATES/slurm.conf.in" "$CONF_DIR/slurm.conf" 0644)
# slurmdbd refuses a slurmdbd.conf readable by others (it holds the DB password).
dbd_changed=$(install_conf "$TEMPLATES/slurmdbd.conf.in" "$CONF_DIR/slurmdbd.conf" 0600)
if [[ -n "$slurm_changed" ]]; then log "wrote $CONF_DIR/slurm.conf"; fi
if [[ -n "$dbd_changed" ]]; then log "wrote $CONF_DIR/slurmdbd.conf"; fi

# ---------------------------------------------------------------------------------------------- munge
munge_ok() { munge -n </dev/null | unmunge >/dev/null; }
if ! munge_ok >/dev/null 2>&1; then
    if [[ ! -s /etc/munge/munge.key ]]; then
        log "creating /etc/munge/munge.key"
        if command -v mungekey >/dev/null; then
            mungekey --create --force --keyfile=/etc/munge/munge.key
        else
            dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key 2>/dev/null
        fi
        chown munge:munge /etc/munge/munge.key
        chmod 0400 /etc/munge/munge.key
    fi
    install -d -o munge -g munge -m 0755 /run/munge
    install -d -o munge -g munge -m 0700 /var/log/munge /var/lib/munge
    log "starting munged"
    runuser -u munge -- /usr/sbin/munged || die "munged failed to start"
    wait_for 15 "munge credential round trip" munge_ok
else
    log "munged already running"
fi

# ---------------------------------------------------------------------------------------------- mariadb
db_ok() { mysqladmin --silent ping; }
if ! db_ok >/dev/null 2>&1; then
    install -d -o mysql -g mysql -m 0755 /run/mysqld
    install -d -o mysql -g adm -m 2750 "$(dirname "$MARIADB_LOG")"
    log "starting mariadb (mysqld_safe)"
    # setsid + nohup: fully detached, survives the end of this script and of the CI step's shell.
    setsid nohup mysqld_safe --skip-syslog --log-error="$MARIADB_LOG" >/dev/null 2>&1 </dev/null &
    wait_for 60 "mariadb to answer 'mysqladmin ping'" db_ok
else
    log "mariadb already running"
fi
mysql --batch <<SQL || die "could not create the $DB_NAME database / $DB_USER user in mariadb"
CREATE DATABASE IF NOT EXISTS $DB_NAME;
CREATE USER IF NOT EXISTS '$DB_USER'@'localhost' IDENTIFIED BY '$DB_PASS';
ALTER USER '$DB_USER'@'localhost' IDENTIFIED BY '$DB_PASS';
GRANT ALL PRIVILEGES ON $DB_NAME.* TO '$DB_USER'@'localhost';
FLUSH PRIVILEGES;
SQL

# ---------------------------------------------------------------------------------------------- slurmdbd
dbd_ok() { timeout 10 sacctmgr -n -P show cluster format=cluster; }
if [[ -n "$dbd_changed" ]]; then stop_pidfile /run/slurmdbd.pid slurmdbd; fi
if ! pid_alive /run/slurmdbd.pid slurmdbd; then
    log "starting slurmdbd"
    slurmdbd || die "slurmdbd failed to start"
fi
wait_for 30 "slurmdbd to answer sacctmgr" dbd_ok
if ! timeout 10 sacctmgr -n -P show cluster format=cluster | grep -qx "$CLUSTER"; then
    log "registering cluster '$CLUSTER' in accounting"
    timeout 20 sacctmgr -i add cluster "$CLUSTER" >/dev/null || die "sacctmgr add cluster $CLUSTER failed"
fi

# ---------------------------------------------------------------------------------------------- slurmctld + slurmd
if [[ -n "$slurm_changed" ]]; then
    stop_pidfile /run/slurmd.pid slurmd
    stop_pidfile /run/slurmctld.pid slurmctld
fi
ctld_ok() { timeout 5 scontrol ping 2>&1 | grep 'is UP'; }
if ! pid_alive /run/slurmctld.pid slurmctld; then
    log "starting slurmctld"
    slurmctld || die "slurmctld failed to start"
fi
wait_for 30 "slurmctld to answer 'scontrol ping'" ctld_ok
if ! pid_alive /run/slurmd.pid slurmd; then
    log "starting slurmd"
    slurmd || die "slurmd failed to start"
fi

node_state() { timeout 5 sinfo -h -N -n "$HOST" -o %T 2>/dev/null | head -n 1; }
deadline=$(($(date +%s) + 45))
resumed=0
while :; do
    state=$(node_state || true)
    case "$state" in
    idle | mixed | allocated) break ;;
    down* | drain* | fail*)
        if ((resumed == 0)); then
            log "node $HOST is '$state': resuming it"
            timeout 10 scontrol update nodename="$HOST" state=resume || true
            resumed=1
        fi
        ;;
    esac
    (($(date +%s) < deadline)) || die "node $HOST not idle after 45 s (state '${state:-?}'; sinfo -R: $(sinfo -R -h 2>&1 | head -n 3))"
    sleep 0.5
done
log "node $HOST is $state ($CPUS CPUs advertised, ${MEM_MB} MB, partition '$PARTITION')"

# ---------------------------------------------------------------------------------------------- smoke test
out=$(timeout 60 srun -p "$PARTITION" -t 1 -n 1 -J slurm-up-srun hostname 2>&1) || die "srun hostname failed: $out"
[[ "$out" == *"$HOST"* ]] || die "srun hostname printed '$out', expected $HOST"
jid=$(timeout 20 sbatch --parsable -p "$PARTITION" -t 1 -J slurm-up-sbatch -o /dev/null --wrap 'hostname') ||
    die "sbatch failed"
jid=${jid%%;*}
deadline=$(($(date +%s) + 60))
while :; do
    acct=$(timeout 10 sacct -n -X -P -j "$jid" -o State 2>/dev/null | head -n 1 || true)
    [[ "$acct" == COMPLETED ]] && break
    case "$acct" in FAILED* | CANCELLED* | TIMEOUT* | NODE_FAIL* | OUT_OF_MEMORY*)
        die "smoke-test job $jid ended $acct" ;;
    esac
    (($(date +%s) < deadline)) || die "smoke-test job $jid not COMPLETED in sacct after 60 s (sacct: '${acct:-nothing}')"
    sleep 0.5
done
log "srun + sbatch job $jid completed and visible in sacct: cluster '$CLUSTER' is ready"
sinfo
