#!/usr/bin/env bash
# Stop what scripts/slurm-up.sh started, by the PID files the daemons wrote (never by process name).
set -u
for pidfile in /run/slurm/slurmd.pid /run/slurm/slurmctld.pid /run/slurm/slurmdbd.pid /run/mysqld/au-ttt.pid \
               /run/munge/munged.pid; do
  [ -s "$pidfile" ] || continue
  pid="$(cat "$pidfile")"
  kill "$pid" 2>/dev/null || continue
  for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  rm -f "$pidfile"
done
exit 0
