#!/bin/bash
# connector-provisioner: turn this host into its network's VPN connector.
# Cloud-neutral. Safe to run again: it converges, it never adds a second copy of anything.
#
# Environment (so it can run outside a VM, e.g. in the test lab):
#   ROOT     prefix for every file this script writes (default: none, i.e. the real /etc)
#   PROFILE  path of an OpenVPN profile to use as is (default: the profile fetched at boot)
set -euo pipefail

# @@CONFIG@@  (rendered by connector-provisioner; the defaults below are for reading only)
LOCAL_SUBNETS="${LOCAL_SUBNETS:-}"
NAT="${NAT:-0}"
NAT_PRESERVE_SOURCE="${NAT_PRESERVE_SOURCE:-1}"
LAN_INTERFACE="${LAN_INTERFACE:-}"
PROFILE_PATH="${PROFILE_PATH:-/etc/openvpn/client/connector.conf}"
# @@END@@

ROOT="${ROOT:-}"
PROFILE="${PROFILE:-$PROFILE_PATH}"
NAME=connector-provisioner
EXIT_NOTIFY_SECONDS=6
log() { echo "$NAME: $*"; }

# The LAN interface: as configured, else the one that carries the default route.
lan="${LAN_INTERFACE}"
if [ -z "$lan" ]; then
  lan="$(ip -4 route show default | awk '{for (i = 1; i < NF; i++) if ($i == "dev") { print $(i + 1); exit }}')"
fi
if [ -z "$lan" ]; then
  log "no LAN interface: none configured and no default route to find it by" >&2
  exit 1
fi
log "LAN interface: $lan"

# Seed "Enable Routing": IPv4 forwarding; seed "Special Considerations": rp_filter off,
# else replies arriving from the VPN for LAN sources are dropped. Persisted in sysctl.d.
mkdir -p "$ROOT/etc/sysctl.d"
cat > "$ROOT/etc/sysctl.d/60-$NAME.conf" <<EOF
# written by $NAME: the connector routes between the VPN and the LAN
net.ipv4.ip_forward = 1
net.ipv4.conf.all.rp_filter = 0
net.ipv4.conf.default.rp_filter = 0
net.ipv4.conf.$lan.rp_filter = 0
EOF
sysctl -q -w net.ipv4.ip_forward=1
sysctl -q -w net.ipv4.conf.all.rp_filter=0
sysctl -q -w net.ipv4.conf.default.rp_filter=0
sysctl -q -w "net.ipv4.conf.$lan.rp_filter=0"

# Forwarded traffic between the VPN (tun+) and the LAN is accepted even where a host
# firewall's FORWARD policy is DROP. Our own chain, flushed and refilled: no duplicates.
iptables -N CP-FORWARD 2>/dev/null || true
iptables -F CP-FORWARD
iptables -A CP-FORWARD -i tun+ -o "$lan" -j ACCEPT
iptables -A CP-FORWARD -i "$lan" -o tun+ -j ACCEPT
iptables -C FORWARD -j CP-FORWARD 2>/dev/null || iptables -I FORWARD 1 -j CP-FORWARD

# Seed "Enable NAT": MASQUERADE out of the LAN interface. With NAT_PRESERVE_SOURCE, traffic
# to each local subnet is exempt (the seed's `! -d <subnet>`; a RETURN per subnet in our
# chain is the same rule for several subnets), so LAN hosts see real VPN addresses.
iptables -t nat -N CP-NAT 2>/dev/null || true
iptables -t nat -F CP-NAT
if [ "$NAT" = 1 ]; then
  if [ "$NAT_PRESERVE_SOURCE" = 1 ]; then
    for subnet in $LOCAL_SUBNETS; do
      iptables -t nat -A CP-NAT -d "$subnet" -j RETURN
    done
  fi
  iptables -t nat -A CP-NAT -j MASQUERADE
  iptables -t nat -C POSTROUTING -o "$lan" -j CP-NAT 2>/dev/null \
    || iptables -t nat -A POSTROUTING -o "$lan" -j CP-NAT
  if [ "$NAT_PRESERVE_SOURCE" = 1 ]; then
    log "NAT on, except towards: ${LOCAL_SUBNETS:-none}"
  else
    log "NAT on for all forwarded traffic"
  fi
else
  while iptables -t nat -D POSTROUTING -o "$lan" -j CP-NAT 2>/dev/null; do :; done
  log "NAT off"
fi
mkdir -p "$ROOT/etc/iptables"
iptables-save > "$ROOT/etc/iptables/rules.v4"

# The VPN client: a service that restarts on failure; where systemd is not running (the
# lab, a container), started directly in the background, once.
if [ ! -s "$PROFILE" ]; then
  log "no VPN profile at $PROFILE" >&2
  exit 1
fi
if [ -z "$ROOT" ] && [ -d /run/systemd/system ]; then
  if [ "$PROFILE" != /etc/openvpn/client/connector.conf ]; then
    install -m 0600 "$PROFILE" /etc/openvpn/client/connector.conf
  fi
  mkdir -p /etc/systemd/system/openvpn-client@connector.service.d
  # a tunnel closed on purpose (a drain, a connector that cannot forward) tells the service
  # it leaves, so the service stops sending to it at once, and stays up for
  # EXIT_NOTIFY_SECONDS meanwhile to forward what is already on its way (an OpenVPN 2.6 server
  # keeps the session 5 s after the notice): ignored by OpenVPN for a TCP profile
  cat > /etc/systemd/system/openvpn-client@connector.service.d/restart.conf <<EOF
[Service]
Restart=always
RestartSec=5
ExecStart=
ExecStart=/usr/sbin/openvpn --suppress-timestamps --nobind --config %i.conf --explicit-exit-notify $EXIT_NOTIFY_SECONDS
TimeoutStopSec=$((EXIT_NOTIFY_SECONDS + 10))
EOF
  systemctl daemon-reload
  systemctl enable --now openvpn-client@connector.service
  systemctl enable netfilter-persistent.service 2>/dev/null || true
  log "VPN client: openvpn-client@connector.service"
else
  pidfile="$ROOT/run/$NAME-openvpn.pid"
  mkdir -p "$ROOT/run"
  # running: the pid is alive and not a zombie left unreaped by a killed client
  pid="$(cat "$pidfile" 2>/dev/null || true)"
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null \
    && ! grep -q '^State:[[:space:]]*Z' "/proc/$pid/status" 2>/dev/null; then
    log "VPN client already running (pid $(cat "$pidfile"))"
  else
    # --cd: a profile may name its key files relative to itself
    openvpn --cd "$(dirname "$(readlink -f "$PROFILE")")" --config "$(readlink -f "$PROFILE")" \
      --explicit-exit-notify "$EXIT_NOTIFY_SECONDS" \
      --daemon "$NAME" --writepid "$(readlink -f "$ROOT/run")/$NAME-openvpn.pid" \
      --log "$(readlink -f "$ROOT/run")/$NAME-openvpn.log"
    log "VPN client started in the background"
  fi
fi
log "done"
