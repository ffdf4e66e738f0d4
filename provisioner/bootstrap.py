"""Renders a connector's bootstrap from `templates/`: a cloud-neutral setup script, and a
thin per-cloud cloud-init wrapper that installs packages, fetches the VPN profile from the
cloud's secret store and runs the setup script. Neither ever contains the profile itself."""

from __future__ import annotations

import ast
import base64
import gzip
import importlib.util
import json
import re
import shlex
from importlib import resources
from pathlib import Path

from . import clouds
from .model import DesiredConnector
from .spec import CLOUD_SCHEMAS

_CONFIG_BLOCK = re.compile(r"^# @@CONFIG@@.*?^# @@END@@\n", re.S | re.M)
_PLACEHOLDER = re.compile(r"{{(\w+)}}")


def _template(name: str, package: str = "provisioner.templates") -> str:
    return resources.files(package).joinpath(name).read_text(encoding="utf-8")


def render_setup_script(connector: DesiredConnector) -> str:
    """The setup script with this connector's settings written in as shell assignments."""
    settings = {
        "LOCAL_SUBNETS": " ".join(str(s) for s in connector.local_subnets),
        "NAT": "1" if connector.nat else "0",
        "NAT_PRESERVE_SOURCE": "1" if connector.nat_preserve_source else "0",
        "LAN_INTERFACE": connector.lan_interface or "",
        "PROFILE_PATH": "/etc/openvpn/client/connector.conf",
    }
    block = "# rendered by connector-provisioner for network " + connector.network + "\n"
    block += "".join(f"{k}={shlex.quote(v)}\n" for k, v in settings.items())
    script, n = _CONFIG_BLOCK.subn(block.replace("\\", "\\\\"), _template("connector-setup.sh"))
    assert n == 1, "connector-setup.sh lost its configuration block"
    return script


def render_template(
    name: str, values: dict[str, str], package: str = "provisioner.templates"
) -> str:
    """Fill `{{key}}` placeholders; every placeholder must be given."""
    text = _template(name, package)
    missing = set(_PLACEHOLDER.findall(text)) - set(values)
    if missing:
        raise KeyError(f"{name}: no value for {', '.join(sorted(missing))}")
    return _PLACEHOLDER.sub(lambda m: values[m.group(1)], text)


# After the VPN client: at a shutdown (a terminate, a delete, a reboot) systemd stops the
# watchdog first, which drains this member (the other takes the routes or front, then the
# tunnel closes gracefully) before it exits; TimeoutStopSec bounds that
WATCHDOG_UNIT = """[Unit]
Description=connector-provisioner: the connector pair's watchdog
After=network-online.target openvpn-client@connector.service
Wants=network-online.target

[Service]
ExecStart={python} /usr/local/sbin/connector-watchdog /etc/connector-provisioner/watchdog.json
Restart=always
RestartSec=2
TimeoutStopSec=40

[Install]
WantedBy=multi-user.target
"""


def watchdog_source(cloud: str) -> str:
    """The watchdog as `cloud`'s VMs run it: its own module, then the cloud's mechanism (its
    package's `watchdog` module, without its import of the watchdog) before `main` is called;
    without comments, docstrings or anything left unused (what EC2's 16 KB of user-data has
    room for); the same code otherwise, as `ast` reads it."""
    described = clouds.get(cloud)
    if described is None or not described.watchdog:
        raise KeyError(f"{cloud}: no pair mechanism")
    own = ast.parse(resources.files("provisioner").joinpath("watchdog.py").read_text())
    spec = importlib.util.find_spec(described.watchdog)
    assert spec is not None and spec.origin is not None, described.watchdog
    mechanism = ast.parse(Path(spec.origin).read_text(encoding="utf-8"))
    called = [n for n in own.body if isinstance(n, ast.If)]  # `if __name__ == "__main__"`
    own.body = [n for n in own.body if n not in called]
    own.body += [
        node
        for node in mechanism.body
        if not (isinstance(node, ast.ImportFrom) and (node.level or node.module == "__future__"))
    ]
    own.body += called
    _drop_unused(own)
    for node in ast.walk(own):
        body = getattr(node, "body", None)
        if (
            isinstance(body, list)
            and body
            and isinstance(body[0], ast.Expr)
            and isinstance(body[0].value, ast.Constant)
            and isinstance(body[0].value.value, str)
        ):
            if len(body) == 1:
                body[0] = ast.Pass()
            else:
                del body[0]
    return "#!/usr/bin/python3\n" + ast.unparse(own) + "\n"


def _drop_unused(tree: ast.Module) -> None:
    """Top-level functions, classes and names that nothing left uses (the other clouds'
    helpers, once their mechanisms are gone), until none is; `main` stays."""

    def defined(node: ast.stmt) -> str | None:
        if isinstance(node, ast.FunctionDef | ast.ClassDef):
            return node.name
        target = (
            node.target
            if isinstance(node, ast.AnnAssign)
            else (
                node.targets[0] if isinstance(node, ast.Assign) and len(node.targets) == 1 else None
            )
        )
        return target.id if isinstance(target, ast.Name) else None

    while True:
        used = {
            n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)
        }
        unused = [
            n
            for n in tree.body
            if (name := defined(n)) and name not in ("main", "MECHANISM") and name not in used
        ]
        if not unused:
            return
        tree.body = [n for n in tree.body if n not in unused]


def watchdog_files(cloud: str, connector: DesiredConnector, region: str) -> tuple[str, str]:
    """One of a pair: cloud-init's write_files entries for the watchdog (the module as it is,
    compressed; its settings; its service) and the runcmd line that starts it. Alone: nothing."""
    if not connector.ha:
        return "", ""
    schema = CLOUD_SCHEMAS[cloud]
    source = watchdog_source(cloud).encode()
    settings: dict[str, object] = {"cloud": cloud, "network": connector.network, "region": region}
    settings.update({key: getattr(connector, key) for key in schema.watchdog_settings})
    settings["settle"] = schema.drain_settle
    encoded = json.dumps(settings)
    files = [
        ("/usr/local/sbin/connector-watchdog", "0755", "gz+b64", gzip.compress(source, mtime=0)),
        ("/etc/connector-provisioner/watchdog.json", "0644", "b64", encoded.encode()),
        (
            "/etc/systemd/system/connector-watchdog.service",
            "0644",
            "b64",
            WATCHDOG_UNIT.format(python=schema.watchdog_python).encode(),
        ),
    ]
    entries = "".join(
        f'  - path: {path}\n    permissions: "{mode}"\n    encoding: {encoding}\n'
        f"    content: {base64.b64encode(body).decode()}\n"
        for path, mode, encoding, body in files
    )
    return entries, "  - [systemctl, enable, --now, connector-watchdog.service]\n"


def render_user_data(cloud: str, connector: DesiredConnector, secret_ref: str, region: str) -> str:
    """The cloud-init user-data for `cloud`: it names where the profile is, never what it is."""
    script = render_setup_script(connector)
    files, run = watchdog_files(cloud, connector, region)
    described = clouds.get(cloud)
    assert described is not None, cloud
    return render_template(
        described.cloud_init,
        {
            "network": connector.network,
            "parameter": secret_ref,
            "region": region,
            # compressed: EC2 takes at most 16 KB of user-data (a pair's watchdog is in it too)
            "setup_script_b64": base64.b64encode(gzip.compress(script.encode(), mtime=0)).decode(),
            "watchdog_files": files,
            # what every cloud's connector-ready does first: wait for the tunnel (one copy)
            "ready_wait": "".join(
                f"      {line}\n" if line else "\n"
                for line in _template("connector-ready-wait.py.tmpl").splitlines()
            ),
            "watchdog_run": run,
        },
        described.package,
    )
