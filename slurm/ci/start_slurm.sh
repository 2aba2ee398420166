#!/usr/bin/env bash
# Start a single-node Slurm cluster on localhost for the tests (as root, no systemd).
#
# Installs Debian's slurmctld, slurmd, slurm-client and munge if missing, writes
# /etc/slurm/slurm.conf (refusing to replace one it did not write), starts munged as the
# munge user, then slurmctld and slurmd, and waits until the node is idle. Runtime files
# live under $MPICUBE_SLURM_DIR (default /tmp/mpicube-slurm; socket paths must stay short).
# Idempotent: a cluster this script started and that still answers is left as it is.
set -euo pipefail
DIR=${MPICUBE_SLURM_DIR:-/tmp/mpicube-slurm}
CONF=/etc/slurm/slurm.conf
MARK="# written by mpicube slurm/ci/start_slurm.sh"

if [ "$(id -u)" -ne 0 ]; then
    echo "start_slurm.sh: must run as root" >&2
    exit 1
fi
if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null \
    || ! command -v sbatch >/dev/null || ! command -v munged >/dev/null; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        slurmctld slurmd slurm-client munge >/dev/null
fi
if [ -e "$CONF" ] && ! grep -qxF "$MARK" "$CONF"; then
    echo "start_slurm.sh: $CONF exists and was not written by this script; not touching it" >&2
    exit 1
fi
if [ -f "$DIR/slurmctld.pid" ] && kill -0 "$(cat "$DIR/slurmctld.pid")" 2>/dev/null \
    && scontrol ping >/dev/null 2>&1; then
    echo "start_slurm.sh: Slurm already running (pid $(cat "$DIR/slurmctld.pid"))"
    exit 0
fi

mkdir -p "$DIR/state" "$DIR/spool" "$DIR/log"
host=$(hostname)
for name in localhost "$host"; do
    if ! getent hosts "$name" >/dev/null; then
        echo "start_slurm.sh: $name does not resolve (add it to /etc/hosts)" >&2
        exit 1
    fi
done
# slurmd -C prints the node's hardware as a NodeName line; keep RealMemory below the total.
node=$(slurmd -C | head -n 1)
memory=$(sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p' <<<"$node")
node=$(sed "s/RealMemory=[0-9]*/RealMemory=$((memory * 9 / 10))/" <<<"$node")
cat >"$CONF" <<CONF
$MARK
ClusterName=mpicube
SlurmctldHost=localhost
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
MpiDefault=pmi2
SchedulerParameters=batch_sched_delay=0
MailProg=/bin/true
ReturnToService=2
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
$node NodeAddr=127.0.0.1 State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=60 State=UP
CONF

# munged refuses to run as root; the package created its key.
install -d -o munge -g munge -m 0755 /run/munge
if ! pgrep -u munge -x munged >/dev/null; then
    runuser -u munge -- /usr/sbin/munged
    touch "$DIR/munged.started"  # stop_slurm.sh stops only a munged started here
fi
slurmctld
slurmd
for _ in $(seq 60); do
    if [ "$(sinfo -h -o %t 2>/dev/null)" = "idle" ]; then
        echo "start_slurm.sh: Slurm up, node $host idle (state in $DIR)"
        exit 0
    fi
    sleep 0.5
done
echo "start_slurm.sh: node not idle after 30 s; logs in $DIR/log" >&2
sinfo >&2 || true
exit 1
