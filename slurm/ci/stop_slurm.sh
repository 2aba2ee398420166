#!/usr/bin/env bash
# Stop the cluster slurm/ci/start_slurm.sh started: cancel its jobs, then SIGTERM slurmd,
# slurmctld and (if that script started it) munged by their pid files and wait for them to
# exit. Safe to run twice.
set -uo pipefail
DIR=${MPICUBE_SLURM_DIR:-/tmp/mpicube-slurm}

stop() {  # stop NAME PIDFILE: SIGTERM the pid in PIDFILE, wait up to 10 s
    local name=$1 pidfile=$2 pid
    [ -f "$pidfile" ] || return 0
    pid=$(cat "$pidfile")
    if kill "$pid" 2>/dev/null; then
        for _ in $(seq 100); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -0 "$pid" 2>/dev/null && echo "stop_slurm.sh: $name ($pid) still running" >&2
    fi
    rm -f "$pidfile"
}

if [ -f "$DIR/slurmctld.pid" ]; then
    scancel --user=root 2>/dev/null || true
fi
stop slurmd "$DIR/slurmd.pid"
stop slurmctld "$DIR/slurmctld.pid"
if [ -f "$DIR/munged.started" ]; then
    stop munged /run/munge/munged.pid
    rm -f "$DIR/munged.started"
fi
echo "stop_slurm.sh: Slurm stopped"
