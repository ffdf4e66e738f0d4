"""Figures, not assertions: a connector pair's failure matrix on a real kernel, per cloud, the way
the README's table has it. The lab (tests/lab: network namespaces, OpenVPN, the cloud API's fake
on HQ's router, a VPN service that spreads each network's flows over all of its connectors as
CloudConnexa documents) is built once; for each cloud a pair runs there, and each member in turn
(the routes' target and the other) is killed, cut off from the service, left unable to forward,
and replaced by a planned change, RUNS times each (`tests/lab/failover.py`). Printed per
failure: the cloud's half (until the routes or front lead to a living member), the service's
half (until the service stops sending to the failed member), until every flow was answered
again, and the packets lost after both halves were whole and in all, as `figure:` lines and a
table.

The balancers probe as apply makes them (Azure's every 5 s, its least; GCP's every 1 s); the
watchdog runs with its defaults (every 0.5 s, down after 3 misses); the service drops a silent connector
after --detection seconds (default 3: the lab's fast value; 60 is OpenVPN's common `keepalive
10 60`, which a real service may use: its timers are its own and not published). Needs root,
/dev/net/tun, and what `scripts/test.sh` installs (openvpn, iptables, iproute2, openssl,
iputils-ping, conntrack):

    python3 bench/failover.py                          # 10 runs of each failure on every cloud
    python3 bench/failover.py --runs 3 --cloud aws     # fewer
    python3 bench/failover.py --detection 60 --mode "replaced (planned)"
    python3 bench/failover.py --nat everything         # each connector NATs (AWS, OCI)
    python3 bench/failover.py --replace                # a single connector replaced (AWS)
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))
sys.path.insert(0, str(HERE.parent))

CLOUDS = ("aws", "oci", "azure", "gcp")
INTERVAL, FAILS = 0.5, 3  # the watchdog's defaults
COLUMNS = ("cloud", "nat", "failure", "member", "runs", "cloud half", "service half",
           "all flows answered", "lost after both whole", "lost while it came back", "lost in all",
           "TCP stall",
           "TCP resets")  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10, help="failures of each kind per member")
    parser.add_argument("--cloud", action="append", choices=CLOUDS, help="default: all four")
    parser.add_argument("--mode", action="append", help="a failure (default: all four)")
    parser.add_argument(
        "--detection",
        type=float,
        default=3.0,
        help="seconds after which the lab's service drops a silent connector",
    )
    parser.add_argument(
        "--probe",
        type=float,
        help="the lab balancer's probe interval (default: what apply makes: Azure's 5 s, GCP's 1 s)",
    )
    parser.add_argument(
        "--nat",
        choices=("none", "local", "everything"),
        default="none",
        help="the connectors' NAT: none, all but to local subnets, everything",
    )
    parser.add_argument("--json", type=Path, help="also write every run's figures here")
    parser.add_argument(
        "--replace",
        action="store_true",
        help="instead: HQ's one connector replaced while the flows run (AWS)",
    )
    args = parser.parse_args(argv)  # fmt: skip

    from lab.netns import lab_available, remove_stale

    why = lab_available()
    if why is not None:
        print(f"bench/failover.py: cannot run the lab here: {why}", file=sys.stderr)
        return 1
    from lab.failover import MODES, matrix
    from lab.pair import FIGURES_NOTES, PairWorld
    from lab.plan import NAT_EVERYTHING, NAT_EXCEPT_LOCAL, NO_NAT
    from lab.world import SeedWorld

    from provisioner.providers.azure.pair import PROBE_SECONDS as AZURE_PROBE
    from provisioner.providers.gcp.pair import PROBE_SECONDS as GCP_PROBE

    probes = {"azure": AZURE_PROBE, "gcp": GCP_PROBE}

    mode = {"none": NO_NAT, "local": NAT_EXCEPT_LOCAL, "everything": NAT_EVERYTHING}[args.nat]
    modes = tuple(args.mode or MODES)
    unknown = [m for m in modes if m not in MODES]
    if unknown:
        parser.error(f"--mode {unknown[0]!r}: one of {', '.join(MODES)}")
    remove_stale()
    started = time.monotonic()
    figures: dict[str, str] = {}
    rows: list[dict[str, str]] = []
    every_run: list[dict[str, object]] = []
    with tempfile.TemporaryDirectory(prefix="cp-failover-") as directory:
        world = SeedWorld(Path(directory) / "lab")
        try:
            world.connect_bob()
            if args.replace:
                from lab.replace import replace

                pair = PairWorld(world, Path(tempfile.mkdtemp(dir=directory)), interval=INTERVAL,
                                 fails=FAILS, cloud="aws", detection=args.detection)  # fmt: skip
                try:
                    figures.update(replace(pair, args.runs).figures())
                finally:
                    pair.close()
            for cloud in [] if args.replace else args.cloud or CLOUDS:
                pair = PairWorld(world, Path(tempfile.mkdtemp(dir=directory)), interval=INTERVAL,
                                 fails=FAILS, cloud=cloud,
                                 probe=args.probe or probes.get(cloud, 5.0),
                                 detection=args.detection, mode=mode)  # fmt: skip

                def keep(run: object, cloud: str = cloud) -> None:
                    every_run.append({"cloud": cloud, **run.__dict__})
                    if args.json:  # as they come: a long run cut short keeps what it had
                        args.json.write_text(json.dumps(every_run, indent=1))

                try:
                    seen = matrix(pair, args.runs, modes, keep)
                finally:
                    pair.close()
                print(f"{cloud}: {seen.setting()}", flush=True)
                for row in seen.rows():
                    rows.append(row)
                    print(" | ".join(row[c] for c in COLUMNS), flush=True)
                    name = f"pair ({cloud}, {row['nat']}), {row['failure']}, {row['member']}"
                    figures[name] = "; ".join(f"{c} {row[c]}" for c in COLUMNS[4:])
        finally:
            world.close()
    if args.json:
        args.json.write_text(json.dumps(every_run, indent=1))
    for note in FIGURES_NOTES:
        print(f"lab note: {note}")
    if rows:
        print("\n| " + " | ".join(COLUMNS) + " |\n|" + "---|" * len(COLUMNS))
        for row in rows:
            print("| " + " | ".join(row[c] for c in COLUMNS) + " |")
    for name, value in sorted(figures.items()):
        print(f"figure: {name}: {value}")
    print(f"figure: failover bench wall time: {time.monotonic() - started:.1f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
