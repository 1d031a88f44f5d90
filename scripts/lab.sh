#!/usr/bin/env bash
# The namespace lab (docs/lab.md): a balancer, a client and N backends on one bridge, each host
# in its own network namespace, the bridge in a switch namespace, so the host is left untouched.
# Backends get the VIPs on lo, DSR sysctls, lb_decap (XDP; or with --decap tun, the TUN
# decapsulator caplance-tun) and services that answer their name.
#   lab.sh up PREFIX [--backends N] [--vips "IP ..."] [--decap native|generic|tun|none] [--owner PID] [--bare]
#   (--bare: backends get addresses and services only, no VIPs, sysctls or decap: `lbctl agent` does it)
#   lab.sh down PREFIX | status PREFIX | cleanup-stale [--all]
# Idempotent: `up` on a lab that is up completes what is missing; `down` twice is fine.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
state_root=/run/caplance-lab
# PREFIX: "cpl" + up to 9 lowercase letters/digits, so "${PREFIX}xb9" fits IFNAMSIZ (15) and
# cleanup-stale can find every lab by name.
prefix_re='^cpl[a-z0-9]{0,9}$'
ns_re='^(cpl[a-z0-9]{0,9})-(lb|cl|sw|b[1-9])$'
default_vips="198.18.1.1 198.18.1.2 2001:db8:1::1"
pass_obj=$here/build/bpf/pass.bpf.o
decap_obj=$here/build/bpf/decap.bpf.o
decap_js=$here/dist/test/support/decap-attach.js
tun_js=$here/dist/test/support/tun-attach.js
tun_bin=$here/build/Release/caplance-tun
http_js=$here/dist/test/support/http-backend.js
ready_timeout=15 # seconds a helper has to print "ready"
stop_timeout=5   # seconds a helper has to exit after SIGTERM

say() { printf 'lab: %s\n' "$*"; }
die() {
  printf 'lab: error: %s\n' "$*" >&2
  exit 1
}
usage() {
  cat >&2 <<'EOF'
usage: lab.sh up PREFIX [--backends N] [--vips "IP ..."] [--decap native|generic|tun|none] [--owner PID] [--bare]
       lab.sh down PREFIX
       lab.sh status PREFIX
       lab.sh cleanup-stale [--all]
PREFIX: "cpl" followed by up to 9 of [a-z0-9], unique per run (e.g. cpl$$).
EOF
  exit 2
}

# ---- prerequisites and helpers

need_root() { [ "$(id -u)" -eq 0 ] || die "the lab needs root (network namespaces, XDP): run with sudo"; }

need_cmds() {
  local c
  for c in "$@"; do
    command -v "$c" >/dev/null 2>&1 || die "$c not found: install it (npm run setup installs the lab's tools)"
  done
}

need_build() {
  local f
  for f in "$decap_obj" "$pass_obj"; do
    [ -f "$f" ] || die "${f#"$here"/} missing: build it with npm run setup (or bash scripts/build.sh)"
  done
  for f in "$decap_js" "$tun_js" "$http_js"; do
    [ -f "$f" ] || die "${f#"$here"/} missing: compile the TypeScript with npm run setup (or bash scripts/build.sh)"
  done
}

check_prefix() {
  [[ $1 =~ $prefix_re ]] || die "invalid PREFIX '$1': use cpl followed by up to 9 of [a-z0-9] (e.g. cpl$$)"
}

# Runs a command inside a namespace, keeping the host's mounts (unlike `ip netns exec`).
in_ns() {
  local ns=$1
  shift
  nsenter --net="/run/netns/$ns" -- "$@"
}

ns_exists() { [ -e "/run/netns/$1" ]; }

link_exists() { ip -n "$1" link show dev "$2" >/dev/null 2>&1; }

# The lab's namespaces for a prefix (any number of backends).
lab_namespaces() {
  local p=$1 name
  for name in $(ip netns list | awk '{print $1}'); do
    if [[ $name =~ $ns_re ]] && [ "${BASH_REMATCH[1]}" = "$p" ]; then echo "$name"; fi
  done | sort
}

# Process start time (clock ticks since boot): with the pid, names a process across pid reuse.
start_time() { sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null | awk '{print $20}'; }

# True when pid runs (zombies count as gone: PID 1 of a container may not reap them).
alive() {
  local st
  st=$(sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null | awk '{print $1}') || return 1
  [ -n "$st" ] && [ "$st" != Z ]
}

# True when the pidfile names a live process whose command line holds the marker.
pidfile_alive() {
  local pidfile=$1 marker=$2 pid
  [ -f "$pidfile" ] || return 1
  pid=$(cat "$pidfile")
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  alive "$pid" || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$marker"
}

# ---- up

mac_of() { printf '02:00:c6:12:00:%02x' "$1"; } # 02:00 + 198.18 + host byte: easy to read in dumps

# One host: namespace end eth0 (renamed by creating it there), switch end ${P}x<role>.
setup_host() {
  local ns=$1 port=$2 host=$3
  if link_exists "$ns" eth0; then
    say "$ns: eth0 exists"
  else
    say "$ns: veth eth0 <-> $ns_sw/$port"
    ip link add eth0 netns "$ns" type veth peer name "$port" netns "$ns_sw"
  fi
  ip -n "$ns_sw" link set dev "$port" master "$bridge" up
  ip -n "$ns" link set dev eth0 address "$(mac_of "$host")"
  in_ns "$ns_sw" ethtool -K "$port" tx off >/dev/null
  address_host "$ns" eth0 "$host"
}

# A host's lab addresses on DEV (here and on the Vagrant VMs, scripts/provision-vm.sh).
address_host() {
  local ns=$1 dev=$2 host=$3
  # Checksum offload on a sending veth leaves partial checksums that encapsulation turns bad.
  in_ns "$ns" ethtool -K "$dev" tx off >/dev/null
  # No duplicate address detection: addresses (link-local included) are usable at once.
  in_ns "$ns" sysctl -qw "net.ipv6.conf.$dev.accept_dad=0"
  ip -n "$ns" addr replace "198.18.0.$host/24" dev "$dev"
  ip -n "$ns" -6 addr replace "2001:db8::$host/64" dev "$dev" nodad
  ip -n "$ns" link set dev "$dev" up
  say "$ns: $dev 198.18.0.$host/24 2001:db8::$host/64, tx checksum offload off"
}

# The client reaches the VIPs through the balancer.
route_client() {
  local ns=$1 dev=$2
  ip -n "$ns" route replace 198.18.1.0/24 via 198.18.0.1 dev "$dev"
  ip -n "$ns" -6 route replace 2001:db8:1::/64 via 2001:db8::1 dev "$dev"
  say "$ns: routes 198.18.1.0/24 via 198.18.0.1, 2001:db8:1::/64 via 2001:db8::1"
}

setup_backend() {
  local ns=$1 dev=${2:-eth0} vip
  for vip in $vips; do
    if [[ $vip == *:* ]]; then
      ip -n "$ns" -6 addr replace "$vip/128" dev lo nodad
    else
      ip -n "$ns" addr replace "$vip/32" dev lo
    fi
  done
  local conf key
  for conf in all default "$dev" lo; do
    for key in "arp_ignore=1" "arp_announce=2" "rp_filter=0"; do
      in_ns "$ns" sysctl -qw "net.ipv4.conf.$conf.$key"
    done
  done
  say "$ns: VIPs on lo ($vips), arp_ignore=1 arp_announce=2 rp_filter=0"
}

# Starts a helper in a namespace, detached (own session, no terminal, logs in the state dir),
# unless its pidfile names a live one; waits for its "ready" line.
start_helper() {
  local ns=$1 what=$2 script=$3
  shift 3
  local pidfile=$state/$ns.$what.pid log=$state/$ns.$what.log
  if pidfile_alive "$pidfile" "$script"; then
    say "$ns: $what already running (pid $(cat "$pidfile"))"
    return
  fi
  : >"$log"
  # setsid execs directly (a background job is no process-group leader), and so do nsenter
  # (network namespace only) and node: $! is node's pid.
  setsid nsenter --net="/run/netns/$ns" -- node "$script" "$@" </dev/null >"$log" 2>&1 &
  local pid=$!
  echo "$pid" >"$pidfile"
  local i
  for ((i = 0; i < ready_timeout * 10; i++)); do
    if grep -qx ready "$log"; then
      say "$ns: $what started (pid $pid)"
      return
    fi
    alive "$pid" || break
    sleep 0.1
  done
  sed 's/^/  /' "$log" >&2
  die "$ns: $what did not become ready within ${ready_timeout}s (its output is above)"
}

do_up() {
  local n=3 decap=native owner="" bare=0
  vips=$default_vips
  while [ $# -gt 0 ]; do
    case $1 in
      --backends) n=${2:-}; shift 2 || usage ;;
      --vips) vips=${2:-}; shift 2 || usage ;;
      --decap) decap=${2:-}; shift 2 || usage ;;
      --owner) owner=${2:-}; shift 2 || usage ;;
      --bare) bare=1; shift ;;
      *) usage ;;
    esac
  done
  [[ $n =~ ^[1-9]$ ]] || die "--backends $n: 1 to 9 backends (198.18.0.11-.19)"
  case $decap in native | generic | tun | none) ;; *) die "--decap $decap: native, generic, tun or none" ;; esac
  [ -n "$vips" ] || die "--vips: at least one VIP"
  local vip
  for vip in $vips; do
    [[ $vip =~ ^198\.1[89]\.[0-9]+\.[0-9]+$ || $vip =~ ^2001:(0)?db8: ]] ||
      die "--vips: $vip is outside the lab's ranges (198.18.0.0/15, 2001:db8::/32)"
  done
  if [ -n "$owner" ]; then
    [[ $owner =~ ^[0-9]+$ ]] && alive "$owner" || die "--owner $owner: no such process"
  fi
  need_root
  need_cmds ip ethtool nsenter setsid sysctl node
  need_build
  if [ "$decap" = tun ]; then
    [ -x "$tun_bin" ] || die "${tun_bin#"$here"/} missing: build it with npm run setup (or bash scripts/build.sh)"
  fi

  # Cleanup trap: a failed `up` of a new lab removes what it made; a failed re-run leaves the
  # existing lab alone and says how to remove it.
  local fresh=1
  if [ -d "$state" ] || [ -n "$(lab_namespaces "$prefix")" ]; then fresh=0; fi
  trap 'up_failed $? '"$fresh" EXIT

  mkdir -p "$state"
  if [ -n "$owner" ]; then
    echo "$owner $(start_time "$owner")" >"$state/owner"
  fi
  echo "$n" >"$state/backends"
  say "up $prefix: balancer, client, $n backends (state in $state)"

  local ns
  for ns in "$ns_sw" "$ns_lb" "$ns_cl" $(seq -f "$prefix-b%g" 1 "$n"); do
    if ns_exists "$ns"; then
      say "namespace $ns exists"
    else
      ip netns add "$ns"
      say "namespace $ns"
    fi
    ip -n "$ns" link set dev lo up
  done

  # The switch only bridges: no IPv6 of its own, so its ports send no RS/MLD into the lab.
  in_ns "$ns_sw" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
  if ! link_exists "$ns_sw" "$bridge"; then
    ip -n "$ns_sw" link add "$bridge" type bridge mcast_snooping 0
  fi
  ip -n "$ns_sw" link set dev "$bridge" up
  say "$ns_sw: bridge $bridge"

  setup_host "$ns_lb" "${prefix}xlb" 1
  setup_host "$ns_cl" "${prefix}xcl" 2
  local i
  for ((i = 1; i <= n; i++)); do setup_host "$prefix-b$i" "${prefix}xb$i" $((10 + i)); done

  route_client "$ns_cl" eth0

  # veth delivers native XDP_TX/redirect frames only to a peer with an XDP program (or GRO):
  # without this, a balancer in native mode would drop everything it sends.
  if ip -n "$ns_sw" link show dev "${prefix}xlb" | grep -q 'prog/xdp'; then
    say "$ns_sw: ${prefix}xlb has an XDP program"
  else
    ip -n "$ns_sw" link set dev "${prefix}xlb" xdpdrv obj "$pass_obj" sec xdp
    say "$ns_sw: lb_pass (native XDP) on ${prefix}xlb, the balancer's peer"
  fi

  for ((i = 1; i <= n; i++)); do
    ns=$prefix-b$i
    if [ "$bare" -eq 0 ]; then setup_backend "$ns"; fi
    local vip_args=()
    if [ "$bare" -eq 0 ]; then for vip in $vips; do vip_args+=(--vip "$vip"); done; fi
    if [ "$decap" = tun ] && [ "$bare" -eq 0 ]; then
      # Only inner packets to the lab's VIPs are written into the TUN device.
      start_helper "$ns" tundecap "$tun_js" --addr "198.18.0.$((10 + i))" --addr "2001:db8::$((10 + i))" \
        "${vip_args[@]}"
    elif [ "$decap" != none ] && [ "$bare" -eq 0 ]; then
      start_helper "$ns" decap "$decap_js" --iface eth0 --addr "198.18.0.$((10 + i))" \
        --addr "2001:db8::$((10 + i))" --mode "$decap"
    fi
    start_helper "$ns" http "$http_js" --name "b$i" "${vip_args[@]}"
  done
  trap - EXIT
  say "up $prefix: ready (client: nsenter --net=/run/netns/$ns_cl ...)"
}

up_failed() {
  local rc=$1 fresh=$2
  [ "$rc" -ne 0 ] || return 0
  if [ "$fresh" -eq 1 ]; then
    say "up $prefix failed: removing the partial lab"
    (do_down) || true
  else
    say "up $prefix failed: the lab may be incomplete (remove it: $0 down $prefix)"
  fi
  exit "$rc"
}

# ---- down

stop_helpers() {
  local dir=$1 pidfile pid marker i
  [ -d "$dir" ] || return 0
  for pidfile in "$dir"/*.pid; do
    [ -e "$pidfile" ] || continue
    case $pidfile in
      *.decap.pid) marker=decap-attach.js ;;
      *.tundecap.pid) marker=tun-attach.js ;;
      *.http.pid) marker=http-backend.js ;;
      *) continue ;;
    esac
    if pidfile_alive "$pidfile" "$marker"; then
      pid=$(cat "$pidfile")
      kill -TERM "$pid" 2>/dev/null || true
      for ((i = 0; i < stop_timeout * 10; i++)); do
        alive "$pid" || break
        sleep 0.1
      done
      if alive "$pid"; then
        kill -KILL "$pid" 2>/dev/null || true
        say "$(basename "$pidfile" .pid): killed (pid $pid, no exit after SIGTERM)"
      else
        say "$(basename "$pidfile" .pid): stopped (pid $pid)"
      fi
    fi
    rm -f "$pidfile"
  done
}

do_down() {
  [ $# -eq 0 ] || usage
  need_root
  need_cmds ip
  stop_helpers "$state"
  local ns found=0
  for ns in $(lab_namespaces "$prefix"); do
    if ! ip netns del "$ns" 2>/dev/null && ns_exists "$ns"; then die "cannot remove namespace $ns"; fi
    say "namespace $ns removed"
    found=1
  done
  rm -rf "$state"
  if [ $found -eq 0 ]; then say "down $prefix: nothing to remove"; else say "down $prefix: done"; fi
}

# ---- status

do_status() {
  [ $# -eq 0 ] || usage
  need_root
  need_cmds ip
  local namespaces ns ok=1
  namespaces=$(lab_namespaces "$prefix")
  if [ -z "$namespaces" ]; then
    say "$prefix: not up"
    return 1
  fi
  local n
  n=$(grep -c -- '-b[1-9]$' <<<"$namespaces" || true)
  say "$prefix: $n backends, state in $state"
  if [ -f "$state/owner" ]; then say "owner: pid $(awk '{print $1}' "$state/owner")"; fi
  for ns in $namespaces; do
    echo "== $ns"
    ip -n "$ns" -br addr show | sed 's/^/  /'
    # "xdp" is native (driver) mode, "xdpgeneric" the skb hook.
    ip -n "$ns" -o link show |
      sed -n 's/^[0-9]*: \([^:@]*\).* \(xdp[a-z]*\) .*prog\/xdp id \([0-9]*\) name \([^ ]*\).*/  xdp: \1 \2 \4 (id \3)/p'
  done
  local i what marker
  for ((i = 1; i <= n; i++)); do
    ns=$prefix-b$i
    for what in decap tundecap http; do
      case $what in
        decap) marker=decap-attach.js ;;
        tundecap) marker=tun-attach.js ;;
        *) marker=http-backend.js ;;
      esac
      # --decap none starts no decap helper (and XDP no TUN one): only a pidfile says one is expected.
      if [ $what != http ] && [ ! -f "$state/$ns.$what.pid" ]; then continue; fi
      if pidfile_alive "$state/$ns.$what.pid" "$marker"; then
        say "$ns: $what running (pid $(cat "$state/$ns.$what.pid"))"
      else
        say "$ns: $what NOT running"
        ok=0
      fi
    done
  done
  [ $ok -eq 1 ]
}

# ---- cleanup-stale

# A lab is stale when its owner process is gone, or when its namespaces have no state dir (its
# run crashed between the two, or /run was cleared). Labs brought up without --owner are kept
# (someone is using them by hand) unless --all.
do_cleanup_stale() {
  local all=0
  case ${1:-} in --all) all=1 ;; "") ;; *) usage ;; esac
  need_root
  need_cmds ip
  local prefixes p name pid stime removed=0
  prefixes=$(
    {
      for name in $(ip netns list | awk '{print $1}'); do
        if [[ $name =~ $ns_re ]]; then echo "${BASH_REMATCH[1]}"; fi
      done
      for name in "$state_root"/cpl*; do
        if [ -d "$name" ]; then basename "$name"; fi
      done
    } | sort -u
  )
  for p in $prefixes; do
    [[ $p =~ $prefix_re ]] || continue
    if [ $all -eq 0 ] && [ -d "$state_root/$p" ]; then
      [ -f "$state_root/$p/owner" ] || continue
      read -r pid stime <"$state_root/$p/owner" || true
      if [ -n "${pid:-}" ] && alive "$pid" && [ "$(start_time "$pid")" = "${stime:-}" ]; then continue; fi
    fi
    say "cleanup-stale: removing lab $p"
    (
      prefix=$p
      set_names
      do_down
    )
    removed=$((removed + 1))
  done
  say "cleanup-stale: $removed lab(s) removed"
}

set_names() {
  state=$state_root/$prefix
  ns_lb=$prefix-lb
  ns_cl=$prefix-cl
  ns_sw=$prefix-sw
  bridge=${prefix}br
}

main() {
  [ $# -ge 1 ] || usage
  local cmd=$1
  shift
  case $cmd in
    up | down | status)
      [ $# -ge 1 ] || usage
      prefix=$1
      shift
      check_prefix "$prefix"
      set_names
      "do_$cmd" "$@"
      ;;
    cleanup-stale) do_cleanup_stale "$@" ;;
    -h | --help | help) usage ;;
    *) usage ;;
  esac
}

# Sourced (scripts/provision-vm.sh), it only defines its functions.
if [ "${BASH_SOURCE[0]}" = "$0" ]; then main "$@"; fi
