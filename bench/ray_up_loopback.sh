#!/usr/bin/env bash
# `ray up` for real on one machine: Ray's local provider reaches this machine over SSH on loopback,
# starts a head node, runs a study on it with `ray exec`, and takes it down with `ray down`.
# Needs root (installs openssh-server and rsync, starts sshd on 127.0.0.1:22) and the project's .venv
# (`make install`). Not part of the test suite: it changes the machine. Usage: bench/ray_up_loopback.sh
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
VENV="$ROOT/.venv"
WORK=$(mktemp -d /tmp/rayup.XXXX)

command -v rsync >/dev/null && [ -x /usr/sbin/sshd ] || {
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openssh-server rsync >/dev/null; }
mkdir -p ~/.ssh /run/sshd && chmod 700 ~/.ssh
[ -f ~/.ssh/runner_up ] || ssh-keygen -q -t ed25519 -N "" -f ~/.ssh/runner_up
grep -qf ~/.ssh/runner_up.pub ~/.ssh/authorized_keys 2>/dev/null || cat ~/.ssh/runner_up.pub >> ~/.ssh/authorized_keys
chmod 600 ~/.ssh/authorized_keys
ssh-keygen -A >/dev/null
pgrep -f "sshd -o ListenAddress=127.0.0.1" >/dev/null || \
  /usr/sbin/sshd -o ListenAddress=127.0.0.1 -o PermitRootLogin=prohibit-password -o PasswordAuthentication=no

# `ray down` runs a bare `ray stop` in an SSH login shell: the venv's ray must be on its PATH
# (cluster.yaml does the same through ~/.bashrc).
grep -q "$VENV/bin" ~/.bashrc 2>/dev/null || echo "export PATH=$VENV/bin:\$PATH" >> ~/.bashrc

cat > "$WORK/cluster.yaml" <<YAML
cluster_name: runner-loopback
provider: {type: local, head_ip: 127.0.0.1, worker_ips: []}
auth: {ssh_user: root, ssh_private_key: ~/.ssh/runner_up}
max_workers: 0
setup_commands:
  - test -x $VENV/bin/ray
head_start_ray_commands:
  - ray stop
  - RAY_AUTH_MODE=token ray start --head --port=6380 --num-cpus=2 --autoscaling-config=~/ray_bootstrap_config.yaml --include-dashboard=false --disable-usage-stats
worker_start_ray_commands: []
YAML

trap '"$VENV/bin/ray" down -y "$WORK/cluster.yaml" >/dev/null 2>&1 || true' EXIT
"$VENV/bin/ray" up -y --no-config-cache "$WORK/cluster.yaml" > "$WORK/up.log" 2>&1 || { tail -20 "$WORK/up.log"; exit 1; }
echo "ray up: head node started over SSH (log: $WORK/up.log)"
"$VENV/bin/ray" exec "$WORK/cluster.yaml" \
  "cd $ROOT && RAY_AUTH_MODE=token $VENV/bin/python -m runner.tune configs/smoke.py --address 127.0.0.1:6380 --storage $WORK/results"
"$VENV/bin/ray" down -y "$WORK/cluster.yaml" > "$WORK/down.log" 2>&1
trap - EXIT
left=$(pgrep -c raylet || true)
echo "ray down: done; raylets left on this machine: ${left:-0}; results: $WORK/results/smoke"
