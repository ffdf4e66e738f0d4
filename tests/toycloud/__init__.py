"""A toy fifth cloud, from its own package alone: its description (what `cloud: toy` places,
its ids' shapes, where its provider and template are) and nothing else of the toolkit's.
`register()` makes it known; tests/test_toy_cloud.py plans, applies and destroys with it
against its tiny fake (`fake.ToyFake`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from provisioner import clouds
from provisioner.clouds import Cloud, CloudSchema
from provisioner.model import Location


@dataclass(frozen=True)
class ToyLocation(Location):
    zone: str
    net: str

    def describe(self) -> str:
        return f"net {self.net} in {self.zone}"


def location(f: Any) -> ToyLocation:
    return ToyLocation(
        zone=f.text("zone", pattern=r"^[a-z]+-\d$", example="toy-1"),
        net=f.text("net", pattern=r"^net-[0-9a-f]{4}$", example="net-0a1b"),
    )


CLOUD = Cloud(
    name="toy",
    title="Toy",
    package=__name__,
    location=ToyLocation,
    schema=CloudSchema(
        ("zone", "net"),
        location,
        route_table=(r"^rt-[0-9a-f]{4}$", "rt-0a1b"),
        security_group=(r"^grp-[0-9a-f]{4}$", "grp-0a1b"),
        subnet=(r"^sub-[0-9a-f]{4}$", "sub-0a1b"),
        default_size="toy.small",
    ),
    provider=f"{__name__}.provider:ToyNetwork",
)


def register() -> None:
    clouds.register(CLOUD)


def unregister() -> None:
    clouds.unregister(CLOUD.name)
