#!/usr/bin/env bash
# Bring up a one-node Slurm on this machine (Debian/Ubuntu, as root, no systemd needed) for `make test-slurm`:
# munge, MariaDB + slurmdbd (so `sacct` works: the Snakemake Slurm executor polls job states with it),
# slurmctld and slurmd, one partition `gpu` with 4 fake GPUs (gres files that point at /dev/null) so that GPU
# requests are scheduled and CUDA_VISIBLE_DEVICES is set exactly as on a real GPU node.
# Idempotent: installs the packages if missing, rewrites the configuration, restarts the daemons, runs a
# self-test job. Stop everything with scripts/slurm-down.sh.
#   usage: scripts/slurm-up.sh            (about 30 s the first time, about 15 s when installed)
set -euo pipefail
trap 'echo "slurm-up: failed at line $LINENO: $BASH_COMMAND (logs: /var/log/slurm/)" >&2' ERR

if [ "$(id -u)" != 0 ]; then echo "slurm-up: run as root (it installs packages and starts daemons)" >&2; exit 2; fi
here="$(cd "$(dirname "$0")" && pwd)"
gpus=4

need=()
for cmd in slurmctld slurmd sbatch sacct slurmdbd munged mariadbd; do command -v "$cmd" >/dev/null || need+=("$cmd"); done
if [ ${#need[@]} -gt 0 ]; then
  echo "slurm-up: installing Slurm, munge and MariaDB (missing: ${need[*]})"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends slurmctld slurmd slurm-client slurmdbd munge mariadb-server >/dev/null
fi

"$here/slurm-down.sh" >/dev/null 2>&1 || true

host="$(hostname -s)"
getent hosts "$host" >/dev/null || echo "127.0.0.1 $host" >> /etc/hosts
mkdir -p /etc/slurm /run/slurm /var/lib/slurm/slurmctld /var/lib/slurm/slurmd /var/log/slurm /var/lib/slurm/fakegpu

# munge: a key owned by munge, mode 0400; the daemon refuses to run as root
mkdir -p /etc/munge /run/munge /var/log/munge /var/lib/munge
[ -s /etc/munge/munge.key ] || mungekey --create --keyfile /etc/munge/munge.key
chown -R munge:munge /etc/munge /run/munge /var/log/munge /var/lib/munge
chmod 0400 /etc/munge/munge.key
runuser -u munge -- /usr/sbin/munged
for _ in $(seq 50); do munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && break; sleep 0.2; done
munge -n | unmunge >/dev/null

# MariaDB on its socket only (root connects without a password), then slurmdbd
mkdir -p /run/mysqld && chown mysql:mysql /run/mysqld
[ -d /var/lib/mysql/mysql ] || mariadb-install-db --user=mysql --datadir=/var/lib/mysql >/dev/null
(mariadbd --user=mysql --skip-networking --pid-file=/run/mysqld/au-ttt.pid >/var/log/slurm/mariadb.log 2>&1 &)
for _ in $(seq 60); do mariadb -e 'select 1' >/dev/null 2>&1 && break; sleep 0.5; done
mariadb -e 'select 1' >/dev/null

cat > /etc/slurm/slurmdbd.conf <<CONF
AuthType=auth/munge
DbdHost=localhost
SlurmUser=root
StorageType=accounting_storage/mysql
StorageUser=root
StorageLoc=slurm_acct_db
LogFile=/var/log/slurm/slurmdbd.log
PidFile=/run/slurm/slurmdbd.pid
CONF
chmod 600 /etc/slurm/slurmdbd.conf
slurmdbd
for _ in $(seq 60); do [ -s /run/slurm/slurmdbd.pid ] && break; sleep 0.5; done

# fake GPUs: gres device files must exist; links to /dev/null schedule like real ones
for i in $(seq 0 $((gpus - 1))); do ln -sfn /dev/null "/var/lib/slurm/fakegpu/gpu$i"; done
echo "Name=gpu File=/var/lib/slurm/fakegpu/gpu[0-$((gpus - 1))]" > /etc/slurm/gres.conf

node="$(slurmd -C | head -1)"
real_mem="$(sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p' <<<"$node")"
node="$(sed "s/RealMemory=[0-9]*/RealMemory=$((real_mem * 9 / 10))/" <<<"$node") Gres=gpu:$gpus State=UNKNOWN"
cat > /etc/slurm/slurm.conf <<CONF
ClusterName=au-ttt
SlurmctldHost=$host
SlurmUser=root
AuthType=auth/munge
StateSaveLocation=/var/lib/slurm/slurmctld
SlurmdSpoolDir=/var/lib/slurm/slurmd
SlurmctldPidFile=/run/slurm/slurmctld.pid
SlurmdPidFile=/run/slurm/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
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
AccountingStorageTRES=gres/gpu
AccountingStoreFlags=job_comment
GresTypes=gpu
$node
PartitionName=gpu Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF

slurmctld -c
slurmd
for _ in $(seq 60); do
  state="$(sinfo -h -N -o %T 2>/dev/null | head -1)"
  [ "$state" = idle ] && break
  sleep 0.5
done
[ "$state" = idle ] || { echo "slurm-up: node is '$state', not idle; see /var/log/slurm/" >&2; exit 1; }

out="$(sbatch --wait --gpus=1 --wrap 'echo "gpu=$CUDA_VISIBLE_DEVICES"' --output=/tmp/slurm-up-selftest.out >/dev/null; cat /tmp/slurm-up-selftest.out)"
[ "$out" = "gpu=0" ] || { echo "slurm-up: self-test job printed '$out', expected gpu=0" >&2; exit 1; }
for _ in $(seq 50); do sacct -n -X -o State 2>/dev/null | grep -q COMPLETED && break; sleep 0.2; done
sacct -n -X -o State | grep -q COMPLETED || { echo "slurm-up: sacct shows no completed job" >&2; exit 1; }
echo "slurm-up: one-node Slurm on $host is up ($gpus fake GPUs, partition gpu, accounting via slurmdbd)"
