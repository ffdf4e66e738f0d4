"""The lab's VPN service, its one part OpenVPN's server lacks: a connector that says it leaves
(its exit notification, sent when its tunnel is closed gracefully) gets no more traffic from
that moment. An OpenVPN 2.6 server keeps such a session for 5 s more ("Delayed exit in 5
seconds") and only then runs `client-disconnect`, which takes the connector out of the
network's multipath route; meanwhile it would go on sending the connector a share of the flows.
This follows each instance's log and takes the connector out of the route as soon as the notice
is logged (the route script's `del`; the server's own `del` later changes nothing more).

    service_watch.py ROUTE_SCRIPT LOG:DEVICE...
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

NOTICE = "exit message received by peer"


def main(script: str, watched: list[str]) -> None:
    logs = [(path, device) for path, device in (w.rsplit(":", 1) for w in watched)]
    offsets = dict.fromkeys((p for p, _ in logs), 0)
    while True:
        for path, device in logs:
            try:
                with open(path, encoding="utf-8", errors="replace") as f:
                    f.seek(offsets[path])
                    text = f.read()
                    offsets[path] = f.tell()
            except OSError:
                continue
            for line in text.splitlines():
                if NOTICE in line:  # "<date> <time> <name>/<ip>:<port> CC-EEN exit message ..."
                    ip, _, port = line.split()[2].split("/", 1)[1].rpartition(":")
                    session = {"dev": device, "trusted_ip": ip, "trusted_port": port}
                    subprocess.run([script, "del"], env={**os.environ, **session}, check=False)
        time.sleep(0.05)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
