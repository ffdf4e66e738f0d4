"""Bob's flow to the HR app for the failover measurement: UDP datagrams, one every INTERVAL
seconds, each carrying its sequence number and send time; the server echoes them back.

    udp_flow.py serve PORT
    udp_flow.py send ADDRESS PORT LOG     (one line per answer: `<seq> <sent> <answered>`)
"""

from __future__ import annotations

import socket
import sys
import threading
import time

INTERVAL = 0.02


def serve(port: int) -> None:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("0.0.0.0", port))
    while True:
        data, peer = s.recvfrom(256)
        s.sendto(data, peer)


def send(address: str, port: int, log_path: str) -> None:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.connect((address, port))
    log = open(log_path, "a", buffering=1)  # noqa: SIM115 (open for the process's life)

    def receive() -> None:
        while True:
            try:
                data = s.recv(256)
            except OSError:  # ICMP unreachable while routes change: keep listening
                continue
            seq, sent = data.decode().split()
            log.write(f"{seq} {sent} {time.time():.4f}\n")

    threading.Thread(target=receive, daemon=True).start()
    seq = 0
    while True:
        # a connected UDP socket reports an earlier ICMP error (from while the routes were
        # changing) on its next send, which then sends nothing: the error is cleared by being
        # reported, so the packet goes out on the second try. Still refused: it is lost.
        for _ in range(2):
            try:
                s.send(f"{seq} {time.time():.4f}".encode())
                break
            except OSError:
                continue
        seq += 1
        time.sleep(INTERVAL)


if __name__ == "__main__":
    if sys.argv[1] == "serve":
        serve(int(sys.argv[2]))
    else:
        send(sys.argv[2], int(sys.argv[3]), sys.argv[4])
