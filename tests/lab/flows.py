"""Many flows from one VPN client to the HR app, for a pair's measurements: UDP flows (each its
own source port, so the VPN service's per-flow spreading puts some on each connector) and long
TCP connections. Every flow sends a numbered message every INTERVAL seconds and the server
echoes it back; the client logs one line per answer.

    flows.py serve UDP_PORT TCP_PORT
    flows.py send ADDRESS UDP_PORT TCP_PORT UDP_FLOWS TCP_FLOWS NAME LOG [INTERVAL]

Log lines: `<flow> <seq> <sent> <answered>`, the flow named `NAME-u<i>` or `NAME-t<i>`; first,
`<flow> port <its source port>` for each. A UDP
message unanswered is lost; a TCP message is never lost while its connection lives (the
kernel retransmits it): a TCP flow shows an outage as a late answer, and a connection that the
network reset as a line `<flow> reset <time>` (it is not reopened: a reset is a failure the
measurement reports).
"""

from __future__ import annotations

import selectors
import socket
import sys
import threading
import time

INTERVAL = 0.1  # each flow's pace: 32 UDP flows and 4 TCP connections make 360 packets a second


def serve(udp_port: int, tcp_port: int) -> None:
    def tcp_client(conn: socket.socket) -> None:
        with conn:
            while data := conn.recv(4096):
                conn.sendall(data)

    def tcp() -> None:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("0.0.0.0", tcp_port))
        listener.listen(64)
        while True:
            conn, _ = listener.accept()
            threading.Thread(target=tcp_client, args=(conn,), daemon=True).start()

    threading.Thread(target=tcp, daemon=True).start()
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("0.0.0.0", udp_port))
    while True:
        data, peer = udp.recvfrom(256)
        udp.sendto(data, peer)


def _connect(address: str, port: int, seconds: float = 60) -> socket.socket:
    """A TCP connection, tried again until the path is there (bounded)."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            return socket.create_connection((address, port), timeout=5)
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def send(address: str, udp_port: int, tcp_port: int, udp_flows: int, tcp_flows: int,
         name: str, log_path: str, interval: float = INTERVAL) -> None:  # fmt: skip
    log = open(log_path, "a", buffering=1)  # noqa: SIM115 (open for the process's life)
    lock = threading.Lock()

    def write(line: str) -> None:
        with lock:
            log.write(line + "\n")

    sel = selectors.DefaultSelector()
    flows: list[tuple[str, socket.socket, bool]] = []
    for i in range(udp_flows):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.connect((address, udp_port))
        s.setblocking(False)
        flows.append((f"{name}-u{i}", s, False))
    for i in range(tcp_flows):
        s = _connect(address, tcp_port)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.setblocking(False)
        flows.append((f"{name}-t{i}", s, True))
    buffers: dict[str, bytes] = {}
    dead: set[str] = set()
    for flow, s, is_tcp in flows:
        sel.register(s, selectors.EVENT_READ, (flow, is_tcp))
        buffers[flow] = b""
        write(f"{flow} port {s.getsockname()[1]}")  # (three words: not an answer)

    def receive() -> None:
        while True:
            for key, _ in sel.select(timeout=1):
                flow, is_tcp = key.data
                s = key.fileobj
                assert isinstance(s, socket.socket)
                try:
                    data = s.recv(4096)
                except BlockingIOError:
                    continue
                except OSError:  # UDP: an ICMP error while routes change; TCP: a reset
                    if is_tcp:
                        write(f"{flow} reset {time.time():.4f}")
                        dead.add(flow)
                        sel.unregister(s)
                    continue
                now = time.time()
                if is_tcp:
                    if not data:
                        write(f"{flow} reset {now:.4f}")
                        dead.add(flow)
                        sel.unregister(s)
                        continue
                    buffers[flow] += data
                    *lines, buffers[flow] = buffers[flow].split(b"\n")
                else:
                    lines = [data]
                for line in lines:
                    seq, sent = line.decode().split()
                    write(f"{flow} {seq} {sent} {now:.4f}")

    threading.Thread(target=receive, daemon=True).start()
    seq = 0
    while True:
        started = time.monotonic()
        for flow, s, is_tcp in flows:
            if flow in dead:
                continue
            message = f"{seq} {time.time():.4f}".encode()
            # a connected UDP socket reports an earlier ICMP error on its next send, which then
            # sends nothing: the error is cleared by being reported, so the second try goes out
            for _ in range(2):
                try:
                    s.send(message + b"\n" if is_tcp else message)
                    break
                except BlockingIOError:  # TCP: the send buffer full during a long outage
                    break
                except OSError:
                    continue
        seq += 1
        time.sleep(max(0.0, interval - (time.monotonic() - started)))


if __name__ == "__main__":
    if sys.argv[1] == "serve":
        serve(int(sys.argv[2]), int(sys.argv[3]))
    else:
        send(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]),
             int(sys.argv[6]), sys.argv[7], sys.argv[8],
             float(sys.argv[9]) if len(sys.argv) > 9 else INTERVAL)  # fmt: skip
