"""Renders a connector's bootstrap from `templates/`: a cloud-neutral setup script, and a
thin per-cloud cloud-init wrapper that installs packages, fetches the VPN profile from the
cloud's secret store and runs the setup script. Neither ever contains the profile itself."""

from __future__ import annotations

import base64
import re
import shlex
from importlib import resources

from .model import DesiredConnector

_CONFIG_BLOCK = re.compile(r"^# @@CONFIG@@.*?^# @@END@@\n", re.S | re.M)
_PLACEHOLDER = re.compile(r"{{(\w+)}}")


def _template(name: str) -> str:
    return resources.files("provisioner.templates").joinpath(name).read_text(encoding="utf-8")


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


def render_template(name: str, values: dict[str, str]) -> str:
    """Fill `{{key}}` placeholders; every placeholder must be given."""
    text = _template(name)
    missing = set(_PLACEHOLDER.findall(text)) - set(values)
    if missing:
        raise KeyError(f"{name}: no value for {', '.join(sorted(missing))}")
    return _PLACEHOLDER.sub(lambda m: values[m.group(1)], text)


def render_user_data(cloud: str, connector: DesiredConnector, secret_ref: str, region: str) -> str:
    """The cloud-init user-data for `cloud`: it names where the profile is, never what it is."""
    script = render_setup_script(connector)
    return render_template(
        f"cloud-init-{cloud}.yaml",
        {
            "network": connector.network,
            "parameter": secret_ref,
            "region": region,
            "setup_script_b64": base64.b64encode(script.encode()).decode(),
        },
    )
