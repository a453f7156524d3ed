#!/usr/bin/env bash
# Bring up a one-node Slurm on this machine (Debian/Ubuntu, as root, no systemd needed) for the Slurm tests:
# munge, MariaDB + slurmdbd (so `sacct` works: the Snakemake Slurm executor polls job states with it),
# slurmctld and slurmd, one partition `gpu` with 4 fake GPUs (gres files that point at /dev/null) so that GPU
# requests are scheduled and CUDA_VISIBLE_DEVICES is set exactly as on a real GPU node.
#
# Every bring-up is a first bring-up: all state (configuration, munge key and socket, MariaDB data directory,
# slurmctld/slurmd state, logs, pid files) lives under one root that this script owns, deletes and recreates,
# so a machine that ran it before behaves like a new one. Only the packages persist (installed when missing).
# Daemons run with SLURM_CONF=<root>/etc/slurm.conf and AU_TTT_SLURM_DAEMON=<root> in their environment, which
# is how scripts/slurm-down.sh finds every one it started, even one whose pid file is gone.
#
# Clients (sinfo, sbatch, sacct, snakemake's Slurm executor) need `export SLURM_CONF=<root>/etc/slurm.conf`;
# /etc/slurm/slurm.conf is pointed at it too when that path is free or already ours.
#   usage: scripts/slurm-up.sh            (about 30 s on a new machine, about 20 s when installed)
#   env:   AU_TTT_SLURM_ROOT (default /var/lib/au-ttt-slurm), AU_TTT_SLURM_GPUS (default 4)
set -euo pipefail

root="${AU_TTT_SLURM_ROOT:-/var/lib/au-ttt-slurm}"
gpus="${AU_TTT_SLURM_GPUS:-4}"
trap 'echo "slurm-up: failed at line $LINENO: $BASH_COMMAND (logs: $root/log/)" >&2' ERR

if [ "$(id -u)" != 0 ]; then echo "slurm-up: run as root (it installs packages and starts daemons)" >&2; exit 2; fi
case "$root" in /?*) ;; *) echo "slurm-up: AU_TTT_SLURM_ROOT must be an absolute path, got '$root'" >&2; exit 2;; esac
case "$root" in /|/etc|/var|/var/lib|/usr|/root|/home|/tmp|/run) \
  echo "slurm-up: AU_TTT_SLURM_ROOT='$root' would delete a system folder; pick a dedicated one" >&2; exit 2;; esac
[[ "$gpus" =~ ^[1-8]$ ]] || { echo "slurm-up: AU_TTT_SLURM_GPUS must be 1..8, got '$gpus'" >&2; exit 2; }
here="$(cd "$(dirname "$0")" && pwd)"
t0=$SECONDS

need=()
for cmd in slurmctld slurmd sbatch sacct sacctmgr slurmdbd munged mungekey mariadbd mariadb-install-db; do
  command -v "$cmd" >/dev/null || need+=("$cmd")
done
if [ ${#need[@]} -gt 0 ]; then
  echo "slurm-up: installing Slurm, munge and MariaDB (missing: ${need[*]})"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends slurmctld slurmd slurm-client slurmdbd munge mariadb-server >/dev/null
fi

# stop whatever an earlier bring-up left running (by pid file, then by the environment marker), then wipe
AU_TTT_SLURM_ROOT="$root" "$here/slurm-down.sh"
rm -rf -- "$root"
etc="$root/etc" run="$root/run" log="$root/log"
mkdir -p "$etc" "$run" "$log" "$root/slurmctld" "$root/slurmd" "$root/fakegpu" "$root/munge" "$root/mysql"
chmod 0755 "$root" "$etc" "$run" "$log"
export SLURM_CONF="$etc/slurm.conf" MYSQL_UNIX_PORT="$run/mysqld/mysqld.sock"
daemon() { env AU_TTT_SLURM_DAEMON="$root" "$@"; }  # the marker slurm-down.sh finds our daemons by

host="$(hostname -s)"
getent hosts "$host" >/dev/null || echo "127.0.0.1 $host" >> /etc/hosts

wait_for() {  # wait_for SECONDS DESCRIPTION COMMAND...: poll until COMMAND succeeds, else fail naming what
  local limit=$1 what=$2; shift 2
  local deadline=$((SECONDS + limit))
  until "$@" >/dev/null 2>&1; do
    if [ $SECONDS -ge $deadline ]; then echo "slurm-up: $what did not come up in ${limit} s (logs: $log/)" >&2; exit 1; fi
    sleep 0.2
  done
}
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# munge: our own key, socket and pid file; the daemon refuses to run as root and insists on private folders
munge_sock="$run/munge/munge.socket"
mkdir -p "$run/munge"
mungekey --create --keyfile "$root/munge/munge.key"
chown -R munge:munge "$root/munge" "$run/munge"
chmod 0700 "$root/munge" && chmod 0755 "$run/munge" && chmod 0400 "$root/munge/munge.key"
touch "$log/munged.log" && chown munge:munge "$log/munged.log" && chmod 0640 "$log/munged.log"
runuser -u munge -- env AU_TTT_SLURM_DAEMON="$root" /usr/sbin/munged --socket="$munge_sock" \
  --key-file="$root/munge/munge.key" \
  --pid-file="$run/munge/munged.pid" --log-file="$log/munged.log" --seed-file="$root/munge/munged.seed"
munge_ok() { munge -n --socket="$munge_sock" | unmunge --socket="$munge_sock"; }
wait_for 20 munged munge_ok

# MariaDB: a fresh data directory, its socket only (root connects through it without a password)
mkdir -p "$run/mysqld" && touch "$log/mariadb.log" && chown mysql:mysql "$root/mysql" "$run/mysqld" "$log/mariadb.log"
mariadb-install-db --no-defaults --user=mysql --datadir="$root/mysql" --auth-root-authentication-method=socket \
  >"$log/mariadb-install.log" 2>&1
(daemon mariadbd --no-defaults --user=mysql --datadir="$root/mysql" --socket="$MYSQL_UNIX_PORT" --skip-networking \
  --pid-file="$run/mysqld/mariadb.pid" --log-error="$log/mariadb.log" </dev/null >/dev/null 2>&1 &)
wait_for 60 MariaDB mariadb --socket="$MYSQL_UNIX_PORT" -e 'select 1'

# slurmdbd: its pid file appears ~0.1 s before it listens on 6819; a slurmctld started in that gap, with no
# state yet, dies with "we have no TRES from it". Wait for the port, then for sacctmgr to get an answer.
cat > "$etc/slurmdbd.conf" <<CONF
# written by au-ttt scripts/slurm-up.sh (test cluster; recreated on every bring-up)
AuthType=auth/munge
AuthInfo=socket=$munge_sock
DbdHost=localhost
DbdPort=6819
SlurmUser=root
StorageType=accounting_storage/mysql
StorageUser=root
StorageLoc=slurm_acct_db
LogFile=$log/slurmdbd.log
PidFile=$run/slurmdbd.pid
CONF
chmod 600 "$etc/slurmdbd.conf"
if port_open 6819; then echo "slurm-up: port 6819 is taken by a slurmdbd this script did not start; stop it first" >&2; exit 1; fi

# fake GPUs: gres device files must exist; links to /dev/null schedule like real ones
for i in $(seq 0 $((gpus - 1))); do ln -sfn /dev/null "$root/fakegpu/gpu$i"; done
echo "Name=gpu File=$root/fakegpu/gpu[0-$((gpus - 1))]" > "$etc/gres.conf"

node="$(slurmd -C | head -1)"
real_mem="$(sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p' <<<"$node")"
node="$(sed "s/RealMemory=[0-9]*/RealMemory=$((real_mem * 9 / 10))/" <<<"$node") Gres=gpu:$gpus State=UNKNOWN"
cat > "$etc/slurm.conf" <<CONF
# written by au-ttt scripts/slurm-up.sh (test cluster; recreated on every bring-up)
ClusterName=au-ttt
SlurmctldHost=$host
SlurmUser=root
AuthType=auth/munge
AuthInfo=socket=$munge_sock
StateSaveLocation=$root/slurmctld
SlurmdSpoolDir=$root/slurmd
SlurmctldPidFile=$run/slurmctld.pid
SlurmdPidFile=$run/slurmd.pid
SlurmctldLogFile=$log/slurmctld.log
SlurmdLogFile=$log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/affinity
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=1000
ReturnToService=2
MinJobAge=300
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
# connections to slurmdbd take their munge socket from here, not from AuthInfo (slurm.conf(5))
AccountingStoragePass=$munge_sock
AccountingStorageTRES=gres/gpu
AccountingStoreFlags=job_comment
GresTypes=gpu
$node
PartitionName=gpu Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF

daemon slurmdbd
wait_for 30 "slurmdbd (port 6819)" port_open 6819
wait_for 30 "slurmdbd (sacctmgr)" sacctmgr -n -i show cluster

daemon slurmctld -c -f "$SLURM_CONF"
wait_for 30 slurmctld scontrol ping
daemon slurmd -f "$SLURM_CONF"
node_idle() { [ "$(sinfo -h -N -o %T 2>/dev/null | head -1)" = idle ]; }
wait_for 30 "the node (state '$(sinfo -h -N -o %T 2>/dev/null | head -1)')" node_idle

out="$(sbatch --wait --gpus=1 --wrap 'echo "gpu=$CUDA_VISIBLE_DEVICES"' --output="$log/selftest.out" >/dev/null
       cat "$log/selftest.out")"
[ "$out" = "gpu=0" ] || { echo "slurm-up: self-test job printed '$out', expected gpu=0" >&2; exit 1; }
completed() { sacct -n -X -o State | grep -q COMPLETED; }
wait_for 20 "sacct's record of the self-test job" completed

# the default client path, when free or already ours, so that a plain `sinfo` finds this cluster
mkdir -p /etc/slurm
if [ ! -e /etc/slurm/slurm.conf ] || [ "$(readlink /etc/slurm/slurm.conf || true)" = "$SLURM_CONF" ] \
   || grep -qE '^(# written by au-ttt scripts/slurm-up.sh|ClusterName=au-ttt)$' /etc/slurm/slurm.conf 2>/dev/null; then
  ln -sfn "$SLURM_CONF" /etc/slurm/slurm.conf
  ln -sfn "$etc/gres.conf" /etc/slurm/gres.conf
  [ -e /etc/slurm/slurmdbd.conf ] || ln -sfn "$etc/slurmdbd.conf" /etc/slurm/slurmdbd.conf
  hint=""
else
  hint=" — /etc/slurm/slurm.conf belongs to another cluster: export SLURM_CONF=$SLURM_CONF"
fi
echo "slurm-up: one-node Slurm on $host is up in $((SECONDS - t0)) s ($gpus fake GPUs, partition gpu," \
     "accounting via slurmdbd, state in $root)$hint"
