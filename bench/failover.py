"""Figures, not assertions: a connector pair's failover on a real kernel, per cloud, the way the
README's table has it. The lab (tests/lab: network namespaces, OpenVPN, the cloud API's fake on
HQ's router) is built once; for each cloud a pair runs there, and its active connector is killed
(every process, its interface down) or its tunnel cut (UDP to the service dropped), RUNS times
each. Printed: median and worst seconds from the failure to Bob's first packet answered again,
and the packets lost after the switch and while the failed connector came back, as `figure:`
lines, and every run's value.

The balancers probe at the clouds' documented interval (Azure's and GCP's 5 s); the watchdog runs
with its defaults (every 1 s, down after 3 misses). Needs root, /dev/net/tun, and what
`scripts/test.sh` installs (openvpn, iptables, iproute2, openssl, iputils-ping):

    python3 bench/failover.py                       # 10 runs of each failure on every cloud
    python3 bench/failover.py --runs 3 --cloud aws  # fewer
    python3 bench/failover.py --replace             # a single connector replaced (AWS), 10 runs
                                                    # made before break, 10 break before make
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))
sys.path.insert(0, str(HERE.parent))

CLOUDS = ("aws", "oci", "azure", "gcp")
DOCUMENTED_PROBE = 5.0  # Azure's NVA guide: a probe every 5 s; Compute's health check likewise
INTERVAL, FAILS = 1.0, 3  # the watchdog's defaults


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10, help="failures of each kind per cloud")
    parser.add_argument("--cloud", action="append", choices=CLOUDS, help="default: all four")
    parser.add_argument("--replace", action="store_true",
                        help="instead: HQ's one connector replaced while Bob's flow runs (AWS)")
    args = parser.parse_args(argv)

    from lab.netns import lab_available, remove_stale

    why = lab_available()
    if why is not None:
        print(f"bench/failover.py: cannot run the lab here: {why}", file=sys.stderr)
        return 1
    from lab.failover import fail_over
    from lab.pair import FIGURES_NOTES, PairWorld
    from lab.world import SeedWorld

    remove_stale()
    started = time.monotonic()
    figures: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="cp-failover-") as directory:
        world = SeedWorld(Path(directory) / "lab")
        try:
            world.connect_bob()
            if args.replace:
                from lab.replace import replace

                pair = PairWorld(world, Path(tempfile.mkdtemp(dir=directory)), interval=INTERVAL,
                                 fails=FAILS, cloud="aws", probe=DOCUMENTED_PROBE)  # fmt: skip
                try:
                    figures.update(replace(pair, args.runs).figures())
                finally:
                    pair.close()
            for cloud in [] if args.replace else args.cloud or CLOUDS:
                pair = PairWorld(world, Path(tempfile.mkdtemp(dir=directory)), interval=INTERVAL,
                                 fails=FAILS, cloud=cloud, probe=DOCUMENTED_PROBE)  # fmt: skip
                try:
                    seen = fail_over(pair, args.runs, probe=DOCUMENTED_PROBE)
                finally:
                    pair.close()
                for line in seen.runs_text():
                    print(line, flush=True)
                figures.update(seen.figures())
                if seen.taken_over != seen.runs or seen.stayed != seen.runs:
                    print(f"failover ({cloud}): the standby took over in {seen.taken_over} of "
                          f"{seen.runs} runs and kept it in {seen.stayed}", flush=True)  # fmt: skip
        finally:
            world.close()
    for note in FIGURES_NOTES:
        print(f"lab note: {note}")
    for name, value in sorted(figures.items()):
        print(f"figure: {name}: {value}")
    print(f"figure: failover bench wall time: {time.monotonic() - started:.1f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
