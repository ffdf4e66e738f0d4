"""The rendered bootstrap: valid shell and YAML, the connector's settings in, the profile out."""

from __future__ import annotations

import base64
import gzip
import json
import shutil
import subprocess
import sys
from ipaddress import IPv4Network as N

import pytest
import yaml
from conftest import desired_connector

from provisioner.bootstrap import render_setup_script, render_user_data
from provisioner.model import DesiredConnector


def connector(**kw) -> DesiredConnector:
    return desired_connector(local_subnets=(N("10.0.0.0/18"), N("10.1.0.0/16")), **kw)


def test_setup_script_is_valid_bash_with_the_settings():
    script = render_setup_script(connector())
    assert script.startswith("#!/bin/bash")
    assert "LOCAL_SUBNETS='10.0.0.0/18 10.1.0.0/16'" in script
    assert "NAT=1" in script and "NAT_PRESERVE_SOURCE=1" in script
    assert "@@CONFIG@@" not in script
    subprocess.run(["bash", "-n"], input=script, text=True, check=True)


def test_nat_off_and_interface_given():
    script = render_setup_script(connector(nat=False, lan_interface="ens5"))
    assert "NAT=0" in script and "LAN_INTERFACE=ens5" in script


def test_user_data_is_cloud_config_naming_the_parameter():
    text = render_user_data(
        "aws", connector(), "/connector-provisioner/vpc-1/hq/profile", "us-east-1"
    )
    doc = yaml.safe_load(text)
    assert text.startswith("#cloud-config")
    assert {"openvpn", "iptables-persistent"} <= set(doc["packages"])
    files = {f["path"]: f for f in doc["write_files"]}
    assert files["/usr/local/sbin/connector-setup"]["encoding"] == "gz+b64"
    setup = gzip.decompress(
        base64.b64decode(files["/usr/local/sbin/connector-setup"]["content"])
    ).decode()
    assert setup == render_setup_script(connector())
    assert (
        "/connector-provisioner/vpc-1/hq/profile"
        in files["/usr/local/sbin/connector-fetch-profile"]["content"]
    )
    assert doc["runcmd"] == [
        ["/usr/local/sbin/connector-fetch-profile"],
        ["/usr/local/sbin/connector-setup"],
        ["/usr/local/sbin/connector-ready"],  # tags the instance ready once the tunnel is up
    ]
    ready = files["/usr/local/sbin/connector-ready"]["content"]
    assert "connector-provisioner:ready" in ready and 'region_name="us-east-1"' in ready
    compile(ready, "connector-ready", "exec")  # the VM's python3 runs it as it is
    assert len(text.encode()) < 16 * 1024  # EC2's user-data limit


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck not installed")
def test_setup_script_passes_shellcheck():
    subprocess.run(
        ["shellcheck", "-s", "bash", "-"],
        input=render_setup_script(connector()),
        text=True,
        check=True,
    )


def test_one_of_a_pair_runs_the_watchdog_as_its_module_says(tmp_path):
    text = render_user_data("aws", connector(ha=True, member=1), "/p-2", "us-east-1")
    # EC2's user-data limit, the watchdog in it: on what is sent, gzip'd (cloud-init unzips)
    assert len(gzip.compress(text.encode(), mtime=0)) < 16 * 1024
    doc = yaml.safe_load(text)
    files = {f["path"]: f for f in doc["write_files"]}
    entry = files["/usr/local/sbin/connector-watchdog"]
    assert entry["encoding"] == "gz+b64"  # as cloud-init writes it
    script = tmp_path / "connector-watchdog"
    script.write_bytes(gzip.decompress(base64.b64decode(entry["content"])))
    code = script.read_text()
    assert "class AwsRoutes" in code and "OciPrivateIp" not in code  # its own cloud's only
    settings = json.loads(
        base64.b64decode(files["/etc/connector-provisioner/watchdog.json"]["content"])
    )
    assert settings == {"cloud": "aws", "network": "hq", "region": "us-east-1", "settle": 2.0}
    unit = base64.b64decode(files["/etc/systemd/system/connector-watchdog.service"]["content"])
    assert b"ExecStart=/usr/bin/python3 /usr/local/sbin/connector-watchdog " in unit
    assert ["systemctl", "enable", "--now", "connector-watchdog.service"] in doc["runcmd"]
    # the compacted module runs: a settings file with an unknown key is refused by name
    (tmp_path / "bad.json").write_text(json.dumps({**settings, "color": "red"}))
    run = subprocess.run(
        [sys.executable, str(script), str(tmp_path / "bad.json")], capture_output=True, text=True
    )
    assert run.returncode != 0 and "unknown setting 'color'" in run.stderr
    # alone: no watchdog
    alone = yaml.safe_load(render_user_data("aws", connector(), "/p", "us-east-1"))
    assert not any("watchdog" in f["path"] for f in alone["write_files"])


def test_gcp_user_data_writes_the_guest_attribute_once_the_tunnel_is_up():
    text = render_user_data(
        "gcp", connector(), "projects/p/secrets/cp-hq-vpn-profile", "europe-west1"
    )
    doc = yaml.safe_load(text)
    files = {f["path"]: f for f in doc["write_files"]}
    ready = files["/usr/local/sbin/connector-ready"]["content"]
    assert "guest-attributes/" in ready and "connector-provisioner/ready" in ready
    assert '"Metadata-Flavor": "Google"' in ready
    compile(ready, "connector-ready", "exec")
    assert doc["runcmd"][:3] == [["/usr/local/sbin/connector-fetch-profile"],
                                 ["/usr/local/sbin/connector-setup"],
                                 ["/usr/local/sbin/connector-ready"]]  # fmt: skip


def test_a_drained_member_waits_for_its_clouds_balancer_before_its_tunnel_closes():
    """What each cloud's bootstrap tells the watchdog to wait, once the front has left a
    draining member, covers the balancer apply makes (its probe interval times the answers that
    decide, and a second): else the balancer still sends to a member whose tunnel is closed."""
    import base64
    import json

    import yaml

    from provisioner.bootstrap import watchdog_files
    from provisioner.providers.azure.pair import PROBE_SECONDS as AZURE
    from provisioner.providers.azure.pair import PROBE_THRESHOLD
    from provisioner.providers.gcp.pair import PROBE_SECONDS as GCP
    from provisioner.spec import CLOUD_SCHEMAS
    from provisioner.watchdog import Settings

    assert CLOUD_SCHEMAS["azure"].drain_settle >= AZURE * PROBE_THRESHOLD + 1
    assert CLOUD_SCHEMAS["gcp"].drain_settle >= GCP + 1
    for cloud in ("aws", "azure", "gcp", "oci"):
        entries, _ = watchdog_files(cloud, connector(ha=True, member=0), "r")
        (found,) = [f for f in yaml.safe_load(f"write_files:\n{entries}")["write_files"]
                    if f["path"].endswith("watchdog.json")]  # fmt: skip
        settings = json.loads(base64.b64decode(found["content"]))
        assert settings["settle"] == CLOUD_SCHEMAS[cloud].drain_settle
        assert Settings(**settings).settle == settings["settle"]  # the watchdog takes it
