#!/usr/bin/env bash
# Stop every daemon scripts/slurm-up.sh started, and its jobs: the pids in the pid files the daemons wrote under
# the cluster's root, every process whose environment holds the AU_TTT_SLURM_DAEMON=<root> marker slurm-up.sh
# gave the daemons, and every job process (SLURM_JOB_ID with SLURM_CONF=<root>/etc/slurm.conf; a job whose
# slurmstepd died would otherwise run on as an orphan). A daemon whose pid file is missing or stale (e.g. after
# a failed bring-up) is found that way; processes are never matched by name, and a pid file's pid is stopped
# only while it carries the marker. SIGTERM to all at once, SIGKILL to any still alive after 10 s; then
# checked: exit 1 naming the survivors if one is left.
#   usage: scripts/slurm-down.sh          (env: AU_TTT_SLURM_ROOT, default /var/lib/au-ttt-slurm)
set -u
root="${AU_TTT_SLURM_ROOT:-/var/lib/au-ttt-slurm}"
run="$root/run"

pids_of() {  # pids among the given /proc/PID/environ files that belong to this cluster, one per line
  [ $# -gt 0 ] || return 0
  local daemons jobs
  daemons="$(grep -lzxF "AU_TTT_SLURM_DAEMON=$root" "$@" 2>/dev/null)"
  jobs="$(grep -lzxF "SLURM_CONF=$root/etc/slurm.conf" "$@" 2>/dev/null)"
  [ -n "$jobs" ] && jobs="$(xargs -r grep -lz '^SLURM_JOB_ID=' 2>/dev/null <<<"$jobs")"
  printf '%s\n' $daemons $jobs | sed -n 's#^/proc/\([0-9]*\)/environ$#\1#p' | grep -vx "$$" | sort -un
}
ours() { [ -n "$(pids_of "/proc/$1/environ")" ]; }
marked() { pids_of /proc/[0-9]*/environ; }  # this cluster's daemons (slurmstepd included) and job processes
alive() {  # those of the given pids still running (a zombie has exited: only its parent can reap it)
  local p state
  for p in "$@"; do
    state="$(sed 's/.*) //' "/proc/$p/stat" 2>/dev/null | cut -d' ' -f1)"
    [ -n "$state" ] && [ "$state" != Z ] && echo "$p"
  done
}

pids=()
for pidfile in "$run/slurmd.pid" "$run/slurmctld.pid" "$run/slurmdbd.pid" "$run/mysqld/mariadb.pid" \
               "$run/munge/munged.pid"; do
  # a pid file's pid counts only while it is still ours (pids are reused after a crash or a reboot)
  [ -s "$pidfile" ] && ours "$(cat "$pidfile")" && pids+=("$(cat "$pidfile")")
done
mapfile -t -O "${#pids[@]}" pids < <(marked)
[ ${#pids[@]} -eq 0 ] && exit 0
kill "${pids[@]}" 2>/dev/null
for _ in $(seq 100); do [ -z "$(alive "${pids[@]}")" ] && break; sleep 0.1; done
left=($(alive "${pids[@]}"))
if [ ${#left[@]} -gt 0 ]; then
  kill -9 "${left[@]}" 2>/dev/null
  for _ in $(seq 50); do [ -z "$(alive "${left[@]}")" ] && break; sleep 0.1; done
fi
left=($(alive "${pids[@]}") $(marked))
if [ ${#left[@]} -gt 0 ]; then echo "slurm-down: processes of $root still running: ${left[*]}" >&2; exit 1; fi
rm -f "$run/slurmd.pid" "$run/slurmctld.pid" "$run/slurmdbd.pid" "$run/mysqld/mariadb.pid" "$run/munge/munged.pid"
exit 0
