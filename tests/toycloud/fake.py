"""The toy cloud's fake: a network with subnets and route tables, VMs, secrets and groups, held
in memory; it refuses what a cloud refuses (an id it does not hold, a route that exists already,
a secret that exists) and logs each call, as a real cloud's fake does."""

from __future__ import annotations

import copy
import itertools
import threading
from dataclasses import dataclass, field
from typing import Any


class ToyError(Exception):
    """The toy cloud's refusal: its code and message."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code


@dataclass
class ToyFake:
    nets: dict[str, dict[str, Any]] = field(default_factory=dict)
    vms: dict[str, dict[str, Any]] = field(default_factory=dict)
    secrets: dict[str, dict[str, Any]] = field(default_factory=dict)
    groups: dict[str, dict[str, Any]] = field(default_factory=dict)
    calls: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.RLock()
        self._ids = itertools.count(0xA000)

    def _id(self, prefix: str) -> str:
        return f"{prefix}-{next(self._ids):04x}"

    def _call(self, name: str) -> None:
        self.calls.append(name)

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return copy.deepcopy(
                {"nets": self.nets, "vms": self.vms, "secrets": self.secrets, "groups": self.groups}
            )

    # --- what an admin has before the toolkit ------------------------------------------------

    def seed(self, cidr: str, subnets: list[str], tables: int = 2) -> dict[str, Any]:
        with self._lock:
            net = self._id("net")
            self.nets[net] = {
                "cidr": cidr,
                "subnets": {self._id("sub"): c for c in subnets},
                "tables": {self._id("rt"): {"0.0.0.0/0": "gw-internet"} for _ in range(tables)},
            }
            return {"net": net, **copy.deepcopy(self.nets[net])}

    # --- the API ------------------------------------------------------------------------------

    def get_net(self, net: str) -> dict[str, Any]:
        self._call("GetNet")
        with self._lock:
            if net not in self.nets:
                raise ToyError("NotFound", f"net {net} does not exist")
            return copy.deepcopy(self.nets[net])

    def put_route(self, table: str, destination: str, target: str, replace: bool) -> None:
        self._call("ReplaceRoute" if replace else "CreateRoute")
        with self._lock:
            routes = self._table(table)
            if not replace and destination in routes:
                raise ToyError("Exists", f"a route to {destination} is in {table} already")
            if target not in {v["nic"] for v in self.vms.values()}:
                raise ToyError("NotFound", f"no interface {target}")
            routes[destination] = target

    def delete_route(self, table: str, destination: str) -> None:
        self._call("DeleteRoute")
        with self._lock:
            if self._table(table).pop(destination, None) is None:
                raise ToyError("NotFound", f"no route to {destination} in {table}")

    def _table(self, table: str) -> dict[str, str]:
        for net in self.nets.values():
            if table in net["tables"]:
                return net["tables"][table]  # type: ignore[no-any-return]
        raise ToyError("NotFound", f"route table {table} does not exist")

    def run_vm(self, net: str, subnet: str, **settings: Any) -> dict[str, Any]:
        self._call("RunVm")
        with self._lock:
            if subnet not in self.nets.get(net, {}).get("subnets", {}):
                raise ToyError("NotFound", f"subnet {subnet} is not in {net}")
            n = len(self.vms) + 10
            vm = {"net": net, "subnet": subnet, "nic": self._id("nic"), "forwarding": False,
                  "ip": f"{self.nets[net]['subnets'][subnet].rsplit('.', 2)[0]}.0.{n}",
                  "public_ip": f"203.0.113.{n}",  # (TEST-NET-3) to dial the VPN service
                  **settings}  # fmt: skip
            self.vms[self._id("vm")] = vm
            return copy.deepcopy(vm)

    def list_vms(self, net: str) -> dict[str, dict[str, Any]]:
        self._call("ListVms")
        with self._lock:
            return {k: copy.deepcopy(v) for k, v in self.vms.items() if v["net"] == net}

    def set_forwarding(self, vm: str) -> None:
        self._call("SetForwarding")
        with self._lock:
            self._vm(vm)["forwarding"] = True

    def delete_vm(self, vm: str) -> None:
        self._call("DeleteVm")
        with self._lock:
            self._vm(vm)
            del self.vms[vm]

    def _vm(self, vm: str) -> dict[str, Any]:
        if vm not in self.vms:
            raise ToyError("NotFound", f"vm {vm} does not exist")
        return self.vms[vm]

    def put_secret(self, name: str, value: str, fingerprint: str, create: bool) -> None:
        self._call("CreateSecret" if create else "UpdateSecret")
        with self._lock:
            if create and name in self.secrets:
                raise ToyError("Exists", f"secret {name} exists")
            self.secrets[name] = {"value": value, "fingerprint": fingerprint}

    def get_secret(self, name: str) -> dict[str, Any] | None:
        self._call("DescribeSecret")
        with self._lock:
            found = self.secrets.get(name)
            return {"fingerprint": found["fingerprint"]} if found else None  # never the value

    def delete_secret(self, name: str) -> None:
        self._call("DeleteSecret")
        with self._lock:
            if self.secrets.pop(name, None) is None:
                raise ToyError("NotFound", f"secret {name} does not exist")

    def put_group(self, name: str) -> None:
        self._call("CreateGroup")
        with self._lock:
            self.groups.setdefault(name, {"rules": []})

    def get_group(self, name: str) -> dict[str, Any] | None:
        self._call("GetGroup")
        with self._lock:
            return copy.deepcopy(self.groups.get(name))

    def group_rule(self, name: str, cidr: str, add: bool) -> None:
        self._call("AddRule" if add else "RemoveRule")
        with self._lock:
            if name not in self.groups:
                raise ToyError("NotFound", f"group {name} does not exist")
            rules = self.groups[name]["rules"]
            if add and cidr not in rules:
                rules.append(cidr)
            elif not add and cidr in rules:
                rules.remove(cidr)

    def delete_group(self, name: str) -> None:
        self._call("DeleteGroup")
        with self._lock:
            if self.groups.pop(name, None) is None:
                raise ToyError("NotFound", f"group {name} does not exist")
