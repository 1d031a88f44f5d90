#!/usr/bin/env bash
# Provisions one VM of the Vagrant lab (vagrant/Vagrantfile) with the namespace lab's own
# per-host steps: scripts/lab.sh is sourced, and the VM's network namespace is given the lab's
# name for the host (`ip netns attach NAME 1`), so lab.sh's `ip -n NAME` and `nsenter` act on
# the VM itself. The balancer runs the packaged systemd unit (confs/systemd/caplance@.service).
#   provision-vm.sh balancer|client|backend INDEX   (as root, from the checkout on the VM)
# Environment: CAPLANCE_MODE (auto|native|generic|nfqueue, default auto), CAPLANCE_BACKENDS (3).
# Untested here: this machine cannot boot VMs (vagrant/README.md).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=scripts/lab.sh
source "$here/scripts/lab.sh"

role=${1:-}
index=${2:-1}
mode=${CAPLANCE_MODE:-auto}
backends=${CAPLANCE_BACKENDS:-3}
[[ $index =~ ^[1-9]$ ]] || die "INDEX $index: 1 to 9"
case $role in
  balancer) host=1 ns_name=lb ;;
  client) host=2 ns_name=cl ;;
  backend) host=$((10 + index)) ns_name=b$index ;;
  *) die "usage: provision-vm.sh balancer|client|backend INDEX" ;;
esac
need_root
prefix=cplvm
set_names
vips=$default_vips
ns=$prefix-$ns_name

# Node.js >= 20.19 (package.json engines): Debian 13's own nodejs is 20.19.
if ! node -e 'const [a, b] = process.versions.node.split(".").map(Number); process.exit(a > 20 || (a === 20 && b >= 19) ? 0 : 1)' 2>/dev/null; then
  say "installing nodejs and npm from apt"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
fi
say "provisioning $role $index: npm run setup (apt packages, npm ci, native/BPF/TypeScript build)"
bash "$here/scripts/setup.sh"

# The lab network's interface: the one Vagrant gave 198.18.0.HOST (eth1, enp0s8, ...).
dev=$(ip -o -4 addr show to "198.18.0.$host/32" | awk '{print $2; exit}')
[ -n "$dev" ] || die "no interface has 198.18.0.$host: check the private network in vagrant/Vagrantfile"
mkdir -p "$state"
ns_exists "$ns" || ip netns attach "$ns" $$
address_host "$ns" "$dev" "$host"

case $role in
  backend)
    setup_backend "$ns" "$dev"
    # Generic XDP decap: native XDP on a virtual NIC depends on the hypervisor's driver.
    start_helper "$ns" decap "$decap_js" --iface "$dev" --addr "198.18.0.$host" --addr "2001:db8::$host" \
      --mode generic
    vip_args=()
    for vip in $vips; do vip_args+=(--vip "$vip"); done
    start_helper "$ns" http "$http_js" --name "b$index" "${vip_args[@]}"
    ;;
  balancer)
    # Packaged as docs/packaging.md describes: lbctl on PATH, the template unit, one instance.
    npm install -g --prefix /usr/local "$here" --no-audit --no-fund --loglevel=error
    install -m 0644 "$here/confs/systemd/caplance@.service" /etc/systemd/system/caplance@.service
    install -d -m 0755 /etc/caplance
    {
      echo "vips:"
      echo "  - vip: tcp/198.18.1.1:80"
      echo "    backends:"
      for ((i = 1; i <= backends; i++)); do echo "      - { address: 198.18.0.$((10 + i)), name: b$i }"; done
    } >"/etc/caplance/$dev.yaml"
    [ -f /etc/caplance/api.token ] ||
      (umask 077 && head -c 32 /dev/urandom | base64 >/etc/caplance/api.token)
    echo "CAPLANCE_OPTS=--source 198.18.0.1 --source 2001:db8::1 --mode $mode --api-token-file /etc/caplance/api.token" \
      >"/etc/caplance/$dev.env"
    systemctl daemon-reload
    systemctl enable "caplance@$dev"
    systemctl restart "caplance@$dev"
    lbctl status
    ;;
  client)
    route_client "$ns" "$dev"
    # The demo: requests through the VIP, answered straight from the backends.
    node "$here/dist/src/lab/http-load.js" http://198.18.1.1/ 300 8
    echo
    ;;
esac
say "$role $index: done"
