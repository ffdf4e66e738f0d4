"""Hostile and unlucky input, as an attacker or a bad day would bring it: each case reproduces one
of the ways a secret could leak, a file be written where no one meant, or a pipeline hang, and
asserts what a user must get instead: one line, the right exit code, nothing sent, nothing lost.
"""

from __future__ import annotations

import base64
import os
import socket
import stat
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

import pytest
import yaml

from provisioner.cli import run
from provisioner.sandbox import SandboxWorld

REPO = Path(__file__).resolve().parent.parent
MESH = REPO / "examples" / "mesh-every-cloud.yaml"
SHADOW = "root:$6$rounds=5000$TRAP-SHADOW-HASH$abcdef:19000:0:99999:7:::\n"


def last_line(err: str) -> str:
    lines = [x for x in err.splitlines() if x.strip() and not x.startswith("  ..")]
    return lines[-1] if lines else ""


# --- a listener that accepts and never answers --------------------------------------------


@pytest.fixture
def silent() -> Iterator[str]:
    """http://127.0.0.1:PORT of a listener that accepts every connection and never answers."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    stop.set()
    thread.join()
    for c in held:
        c.close()
    listener.close()


def one_network(tmp_path: Path, name: str) -> Path:
    """The mesh example's network `name` alone, with its profile beside it."""
    doc = yaml.safe_load(MESH.read_text())
    doc["networks"] = {name: doc["networks"][name]}
    (tmp_path / "profiles").mkdir(exist_ok=True)
    for profile in (REPO / "examples" / "profiles").glob("*.ovpn"):
        (tmp_path / "profiles" / profile.name).write_bytes(profile.read_bytes())
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


ENDPOINTS = {
    "hq": "AWS_ENDPOINT_URL",
    "azhub": "PROVISION_AZURE_ENDPOINT",
    "gchub": "PROVISION_GCP_ENDPOINT",
    "ochub": "PROVISION_OCI_ENDPOINT",
}


@pytest.mark.parametrize("network", list(ENDPOINTS), ids=["aws", "azure", "gcp", "oci"])
def test_an_endpoint_that_never_answers_ends_in_one_line_naming_it(
    network, silent, tmp_path, monkeypatch, capsys
):
    """Before: AWS retried 4 times 60 s apart in silence, GCP waited for ever. Now every SDK
    client waits the read limit, retries within the call's deadline, and gives up with one
    line that names where it waited."""
    monkeypatch.setenv(ENDPOINTS[network], silent)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDTRAP")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "TRAP-AWS-SECRET-never-printed")
    monkeypatch.setenv("PROVISION_READ_TIMEOUT", "0.5")
    monkeypatch.setenv("PROVISION_CALL_DEADLINE", "1.5")
    started = time.monotonic()
    code = run(["plan", "-f", str(one_network(tmp_path, network))])
    spent = time.monotonic() - started
    err = capsys.readouterr().err
    assert code == 1, err
    line = last_line(err)
    assert "127.0.0.1:" + silent.rsplit(":", 1)[1] in line or "Read timed out" in line, line
    assert "Traceback" not in err and "TRAP-AWS-SECRET" not in err
    if network in ("hq", "azhub"):  # the SDKs that retry a silent endpoint say so each time
        assert "trying again" in err, err
    assert spent < 60  # bounded: the limits above, not the SDKs' minutes (not a timing test)


def test_the_vpn_service_that_never_answers_ends_in_one_line(
    world: SandboxWorld, silent, monkeypatch, capsys
):
    monkeypatch.setenv("CLOUDCONNEXA_API_URL", silent)
    monkeypatch.setenv("CLOUDCONNEXA_CLIENT_ID", "id")
    monkeypatch.setenv("CLOUDCONNEXA_CLIENT_SECRET", "TRAP-CC-SECRET-never-printed")
    monkeypatch.setenv("PROVISION_READ_TIMEOUT", "0.5")
    code = run(["plan", "-f", str(world.write_topology(partner=True, service=True))])
    err = capsys.readouterr().err
    assert code == 1
    assert f"CloudConnexa API at {silent} cannot be reached" in last_line(err), err
    assert "TRAP-CC-SECRET" not in err


# --- secrets on every failure path -------------------------------------------------------

TRAPS = {
    "CLOUDCONNEXA_CLIENT_SECRET": "TRAP-cc-secret-9f8e7d",
    "AWS_SECRET_ACCESS_KEY": "TRAP-aws-secret-1a2b3c",
    "AWS_SESSION_TOKEN": "TRAP-aws-token-4d5e6f",
    "AZURE_CLIENT_SECRET": "TRAP-azure-secret-7a8b9c",
}


def trapped(text: str) -> list[str]:
    """Every trap value found in `text`, in any form a request would carry it."""
    found = []
    for value in TRAPS.values():
        basic = base64.b64encode(f"sandbox-client:{value}".encode()).decode()
        forms = {value, quote(value, safe=""), quote_plus(value), basic}
        found += [f for f in forms if f in text]
    return found


@pytest.mark.parametrize("debug", [False, True], ids=["plain", "debug"])
def test_no_secret_in_any_error_whatever_fails(
    world: SandboxWorld, service, silent, monkeypatch, capsys, caplog, debug
):
    """Before: `CLOUDCONNEXA_API_URL="not a url"` printed the token request's URL with the
    client secret in its query. Now the token request carries nothing in its URL, the URL is
    checked before any request, and every line printed (the --debug traceback included) is
    redacted: trap values in every secret the toolkit reads, each failure driven, all output
    grepped."""
    caplog.set_level("DEBUG")
    for name, value in TRAPS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("CLOUDCONNEXA_CLIENT_ID", "sandbox-client")
    monkeypatch.setenv("PROVISION_READ_TIMEOUT", "0.5")
    path = str(world.write_topology(partner=True, service=True))
    extra = ["--debug"] if debug else []
    fake = service.fake
    said = []

    def attempt(url: str, expect: int) -> str:
        monkeypatch.setenv("CLOUDCONNEXA_API_URL", url)
        code = run(["plan", "-f", path, *extra])
        out, err = capsys.readouterr()
        said.append(out + err)
        assert code == expect, err
        return last_line(err)

    assert "CLOUDCONNEXA_API_URL" in attempt("not a url", 2)
    assert "must be https://" in attempt("ftp://acme.api.openvpn.com", 2)
    assert "must be https://" in attempt("http://acme.api.openvpn.com", 2)
    assert "never in the URL" in attempt("https://u:TRAP-aws-secret-1a2b3c@x.invalid", 2)
    attempt("http://127.0.0.1:9", 1)  # nothing listens: refused
    attempt(silent, 1)  # accepts, never answers
    attempt(service.url, 1)  # the fake, with the wrong secret: 401
    fake.credentials["sandbox-client"] = TRAPS["CLOUDCONNEXA_CLIENT_SECRET"]
    fake.fail("GET", r"/networks$", 503, "ServiceUnavailable", times=100)
    attempt(service.url, 1)  # a 5xx that does not go away
    assert fake.calls and any(c.path == "/oauth/token" for c in fake.calls)
    assert all(
        c.body != {"query": ["client_id", "client_secret", "grant_type"]} for c in fake.calls
    )
    said.append(caplog.text)
    assert not trapped("\n".join(said))


# --- files written ------------------------------------------------------------------------


def test_a_planted_partial_file_or_link_never_receives_the_profile(
    world: SandboxWorld, service, tmp_path, capsys
):
    """Before: profile_out went through a fixed `.NAME.partial` opened without O_EXCL or
    O_NOFOLLOW: a planted link made apply overwrite its target, a planted 0644 file left the
    profile world-readable. Now: a fresh exclusive 0600 name, then a rename."""
    path = world.write_topology(partner=True, service=True)
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    (world.directory / ".partner.ovpn.partial").symlink_to(victim)
    planted = world.directory / ".partner.ovpn.partial.0"
    planted.write_text("")
    planted.chmod(0o644)
    assert run(["apply", "-f", str(path), "--yes"]) == 0, capsys.readouterr().err
    out = world.directory / "partner.ovpn"
    assert victim.read_text() == "precious\n"
    assert not out.is_symlink() and stat.S_IMODE(out.stat().st_mode) == 0o600
    assert out.read_text().startswith("client")
    assert planted.read_text() == ""  # left as it was, never written
    leftovers = [p.name for p in world.directory.glob(".partner.ovpn.*.partial")]
    assert leftovers == []

    # profile_out itself a dangling link planted to make a file elsewhere: the link is
    # replaced by the profile, and nothing is made where it pointed
    out.unlink()
    elsewhere = tmp_path / "cron.d-job"
    out.symlink_to(elsewhere)
    assert run(["apply", "-f", str(path), "--yes"]) == 0
    assert not elsewhere.exists() and not out.is_symlink()
    assert stat.S_IMODE(out.stat().st_mode) == 0o600


@pytest.mark.parametrize(
    "where", ["/proc/site.ovpn", "/dev/null", "missing-dir/site.ovpn"], ids=["proc", "dev", "nodir"]
)
def test_a_profile_out_that_cannot_be_written_is_bad_input_at_plan(
    world: SandboxWorld, service, capsys, where
):
    """Before: `/proc/site.ovpn` passed plan, and apply ended as `unexpected error:
    FileNotFoundError` after changing the service. Now: exit 2 at plan, no call."""
    doc = world.topology(partner=True, service=True)
    doc["networks"]["partner"]["connector"]["profile_out"] = where
    path = world.directory / "topology.yaml"
    path.write_text(yaml.safe_dump(doc))
    service.fake.calls.clear()
    assert run(["plan", "-f", str(path)]) == 2
    line = last_line(capsys.readouterr().err)
    assert line.startswith("provision: networks.partner.connector.profile_out: cannot be written")
    assert service.fake.calls == []


# --- files read -----------------------------------------------------------------------------


def _profile_cases(tmp: Path) -> dict[str, str]:
    shadow = tmp / "shadow"
    shadow.write_text(SHADOW)
    (tmp / "link-to-shadow.ovpn").symlink_to(shadow)
    (tmp / "huge.ovpn").write_bytes(b"client\nremote x 1194\n<key>\n" + b"A" * (1 << 20))
    os.mkfifo(tmp / "fifo.ovpn")
    return {
        "a password file": str(shadow),
        "a link to it": str(tmp / "link-to-shadow.ovpn"),
        "a path out of the directory": "../" * 12 + str(shadow).lstrip("/"),
        "an endless device": "/dev/zero",
        "a pipe": str(tmp / "fifo.ovpn"),
        "a large file": str(tmp / "huge.ovpn"),
    }


def test_a_profile_that_is_not_one_is_bad_input_naming_the_file_never_its_contents(
    world: SandboxWorld, tmp_path, capsys, calls
):
    """Before: `connector.profile: /etc/shadow` (or a path out, or a link) passed plan and
    apply stored it in the cloud; /dev/zero ended in MemoryError. Now each is exit 2 at plan,
    with no cloud call and nothing of the file's content in the line."""
    for what, profile in _profile_cases(tmp_path).items():
        doc = world.topology()
        doc["networks"]["hq"]["connector"]["profile"] = profile
        path = world.directory / "topology.yaml"
        path.write_text(yaml.safe_dump(doc))
        calls.calls.clear()
        assert run(["plan", "-f", str(path)]) == 2, what
        err = capsys.readouterr().err
        assert last_line(err).startswith("provision: networks.hq.connector.profile: "), err
        assert "TRAP-SHADOW" not in err and "root:" not in err, what
        assert calls.calls == [], what


@pytest.mark.parametrize("kind", ["shadow", "zero", "directory", "binary"])
def test_a_topology_that_is_not_one_is_bad_input_without_its_contents(tmp_path, capsys, kind):
    """Before: `plan -f /etc/shadow` printed the file's first line; `-f /dev/zero` ended in
    MemoryError."""
    target = {
        "shadow": tmp_path / "shadow",
        "zero": Path("/dev/zero"),
        "directory": tmp_path,
        "binary": tmp_path / "binary",
    }[kind]
    (tmp_path / "shadow").write_text(SHADOW)
    (tmp_path / "binary").write_bytes(b"\x7fELF\x00\x01" * 10)
    assert run(["plan", "-f", str(target)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1, err
    assert "TRAP-SHADOW" not in err and "rounds" not in err


def test_a_yaml_alias_bomb_is_refused_before_it_expands(tmp_path, capsys):
    """Before: nine levels of aliases in `version` ran 35 s to 1.9 GB and ended as
    `unexpected error: MemoryError`. Now: exit 2 from the node graph, never expanded."""
    levels = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    names = "abcdefghi"
    for prev, name in zip(names, names[1:], strict=False):
        levels.append(f"{name}: &{name} [" + ",".join([f"*{prev}"] * 9) + "]")
    for field in ("version: *i", "vpn_subnet: *i"):
        path = tmp_path / "bomb.yaml"
        path.write_text("\n".join([*levels, field, "networks: {}"]) + "\n")
        assert run(["plan", "-f", str(path)]) == 2
        err = capsys.readouterr().err
        assert "YAML aliases" in err and len(err.splitlines()) == 1, err


@pytest.mark.parametrize(
    "peer", ["224.0.0.0/4", "127.0.0.0/8", "169.254.0.0/16", "0.0.0.0/8", "255.255.255.255/32"]
)
def test_a_range_that_can_never_be_routed_is_bad_input(world: SandboxWorld, capsys, calls, peer):
    """Before: multicast, loopback and link-local peers were accepted (a service network and app
    rules were made for link-local)."""
    doc = world.topology(partner=True)
    doc["networks"]["partner"]["subnets"] = [peer]
    path = world.directory / "topology.yaml"
    path.write_text(yaml.safe_dump(doc))
    assert run(["plan", "-f", str(path)]) == 2
    line = last_line(capsys.readouterr().err)
    assert line.startswith("provision: networks.partner.subnets[0]: ") and peer in line
    assert "cannot be routed" in line and calls.calls == []


# --- two runs at once ---------------------------------------------------------------------


def _race(make: Callable[[], Any]) -> list[BaseException | None]:
    """Two applies of the same file started together: both plan (and see nothing made yet)
    before either carries anything out; what each ended with."""
    barrier = threading.Barrier(2, timeout=60)
    ended: list[BaseException | None] = []
    runs = [make(), make()]  # (each reads the file here: the test's world writes it anew)

    def one(d: Any) -> None:
        try:
            d.apply(confirm=lambda plan: barrier.wait() is not None)
            ended.append(None)
        except BaseException as e:  # noqa: BLE001 - what it ended with is the point
            ended.append(e)

    threads = [threading.Thread(target=one, args=(d,)) for d in runs]
    [t.start() for t in threads]
    [t.join(timeout=300) for t in threads]
    return ended


def test_two_applies_at_once_launch_one_connector_per_network_on_aws(session, world, clouds):
    """Before: two applies at once both exited 0 and launched twice. Now the second finds the
    lease and stops with one line naming the holder; each network has one connector."""
    from conftest import deployment as aws_deployment

    from provisioner.lease import Locked
    from provisioner.providers.aws.common import TAG

    ended = _race(lambda: aws_deployment(world, clouds))
    assert sorted(e is None for e in ended) == [False, True], ended
    (refused,) = [e for e in ended if e is not None]
    assert isinstance(refused, Locked) and "another run holds it: apply by pid" in str(refused)
    ec2 = session.client("ec2", region_name="us-east-1")
    for region, name in (("us-east-1", "hq"), ("us-west-2", "branch")):
        ec2 = session.client("ec2", region_name=region)
        live = [
            i["InstanceId"]
            for r in ec2.describe_instances(Filters=[
                {"Name": f"tag:{TAG}", "Values": [name]},
                {"Name": "instance-state-name", "Values": ["pending", "running"]},
            ])["Reservations"]
            for i in r["Instances"]
        ]  # fmt: skip
        assert len(live) == 1, (name, live)
    assert aws_deployment(world, clouds).plan().empty  # and no lease is left behind
    ssm = session.client("ssm", region_name="us-east-1")
    assert not [p for p in ssm.describe_parameters()["Parameters"] if p["Name"].endswith("/lease")]


def test_a_held_lease_stops_apply_until_it_expires_or_is_unlocked(
    session, world: SandboxWorld, capsys
):
    """A lease of a run on another host: apply exits 4 with one line naming it and changes
    nothing; `provision unlock` removes it; a lease past its expiry is taken over."""
    from provisioner.lease import Holder
    from provisioner.providers.aws.common import ParameterLease

    path = str(world.write_topology())
    ssm = session.client("ssm", region_name="us-east-1")
    store = ParameterLease(ssm, f"/connector-provisioner/{world.hq.vpc}/hq/lease")
    other = Holder("0123abcd", "ci-runner-7", 4242, "apply", time.time() - 60, time.time() + 600)
    assert store.write(other.dumps(), None)
    assert run(["apply", "-f", path, "--yes"]) == 4
    line = last_line(capsys.readouterr().err)
    assert "network hq: another run holds it: apply by pid 4242 on ci-runner-7" in line
    assert "nothing was changed" in line
    assert not session.client("ec2", region_name="us-east-1").describe_instances()["Reservations"]

    assert run(["force-unlock", "-f", path, "--network", "hq"]) == 0  # `unlock`, as terraform
    assert "hq: removed the lease of apply by pid 4242 on ci-runner-7" in capsys.readouterr().out
    assert store.read() == (None, None)

    stale = Holder("feedbeef", "crashed-host", 1, "apply", time.time() - 7200, time.time() - 3600)
    assert store.write(stale.dumps(), None)
    assert run(["apply", "-f", path, "--yes"]) == 0  # an expired lease is taken over
    assert store.read() == (None, None)  # and ours is gone at the end


def test_a_lease_held_on_a_later_network_leaves_none_of_ours_behind(
    session, world: SandboxWorld, capsys
):
    """The file's first network's lease is taken first, the others side by side: when one of
    those is another run's, apply exits 4 naming it, the leases it took are released (none of
    ours is left), and nothing changed."""
    from provisioner.lease import Holder
    from provisioner.providers.aws.common import ParameterLease

    path = str(world.write_topology())
    branch = ParameterLease(session.client("ssm", region_name=world.branch.region),
                            f"/connector-provisioner/{world.branch.vpc}/branch/lease")  # fmt: skip
    hq = ParameterLease(session.client("ssm", region_name=world.hq.region),
                        f"/connector-provisioner/{world.hq.vpc}/hq/lease")  # fmt: skip
    other = Holder("0123abcd", "ci-runner-7", 4242, "apply", time.time() - 60, time.time() + 600)
    assert branch.write(other.dumps(), None)
    assert run(["apply", "-f", path, "--yes"]) == 4
    line = last_line(capsys.readouterr().err)
    assert "network branch: another run holds it: apply by pid 4242" in line, line
    assert hq.read() == (None, None)  # the lease taken first was released
    assert Holder.loads(branch.read()[0]) == other  # and the other run's stands
    for vpc in (world.hq, world.branch):
        ec2 = session.client("ec2", region_name=vpc.region)
        assert not ec2.describe_instances(Filters=[{"Name": "vpc-id", "Values": [vpc.vpc]}])[
            "Reservations"]  # fmt: skip


def _one_launch_when_two_race(world: Any, launches: Callable[[], list[str]]) -> None:
    """Two applies at once on a fake cloud: one carries out, the other stops at the lease; the
    launches are those of one run alone, and no lease is left."""
    from provisioner.lease import Locked

    ended = _race(world.deployment)
    assert sorted(e is None for e in ended) == [False, True], ended
    assert isinstance([e for e in ended if e is not None][0], Locked)
    raced = sorted(launches())
    assert world.deployment().plan().empty
    assert world.deployment().provider("hq").lease_store().read()[0] is None  # released
    world.deployment().destroy()
    start = len(launches())
    world.deployment().apply()  # the same, by one run alone
    assert raced == sorted(launches()[start:]) and raced, raced


@pytest.mark.xdist_group("azure")
def test_two_applies_at_once_launch_one_connector_on_azure(azure):
    """The case that was seen: two applies at once each launched the Azure connector."""
    azure.arm.calls.clear()
    _one_launch_when_two_race(
        azure,
        lambda: [c for c in azure.mutating() if c.startswith("PUT microsoft.compute/virtualm")],
    )


@pytest.mark.xdist_group("oci")
def test_two_applies_at_once_launch_one_connector_on_oci(oci_world):
    oci_world.fake.calls.clear()
    _one_launch_when_two_race(
        oci_world, lambda: [c for c in oci_world.mutating() if c.startswith("POST instances.")]
    )


@pytest.mark.xdist_group("gcp")
def test_two_applies_at_once_launch_one_connector_on_gcp(gcp):
    gcp.gce.calls.clear()
    _one_launch_when_two_race(
        gcp, lambda: [c for c in gcp.mutating() if c.startswith("POST compute.instances.insert")]
    )


# --- credential errors: one line ------------------------------------------------------------

SIGNATURE_MESSAGE = (
    "The request signature we calculated does not match the signature you provided. Check your "
    "AWS Secret Access Key and signing method.\n\nThe Canonical String for this request should "
    "have been\n'POST\n/\n\ncontent-type:application/x-www-form-urlencoded; charset=utf-8\n"
    "host:ec2.us-east-1.amazonaws.com\nx-amz-date:20261206T220000Z\n\ncontent-type;host;"
    "x-amz-date\nTRAP-CANONICAL-HASH'\n\nThe String-to-Sign should have been\n'AWS4-HMAC-SHA256"
    "\n20261206T220000Z\n20261206/us-east-1/ec2/aws4_request\nTRAP-STRING-TO-SIGN'"
)


def test_an_aws_credential_refusal_is_one_line(world: SandboxWorld, capsys, monkeypatch):
    """Before: a SignatureDoesNotMatch printed AWS's whole message: the canonical request and
    the string to sign, the signing header's parts, over a dozen lines."""
    import botocore.handlers
    from conftest import error_response, every_session_faults

    handlers = every_session_faults(
        "before-send.ec2.DescribeVpcs",
        lambda: error_response("ec2", 403, "SignatureDoesNotMatch", SIGNATURE_MESSAGE),
    )
    monkeypatch.setattr(botocore.handlers, "BUILTIN_HANDLERS", handlers)
    assert run(["plan", "-f", str(world.write_topology())]) == 1
    err = capsys.readouterr().err
    line = last_line(err)
    assert "AWS refused the credentials (SignatureDoesNotMatch" in line, err
    assert "TRAP-" not in err and "Canonical" not in err
    assert [x for x in err.splitlines() if not x.startswith("  ..")] == [line]


def test_an_azure_credential_chain_is_one_line(tmp_path):
    """Before: azure-identity logged its whole credential chain (14 lines) before the one line
    the toolkit says. In a process of its own, as a user's shell runs it."""
    import subprocess
    import sys

    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("AZURE_", "PROVISION_", "MSI_", "IDENTITY_"))
    }
    env["HOME"] = str(tmp_path)  # no Azure CLI login, no token cache
    env["PATH"] = "/usr/bin:/bin"
    done = subprocess.run(
        [sys.executable, "-m", "provisioner.cli", "plan", "-f", str(one_network(tmp_path, "azhub"))],
        capture_output=True, text=True, env=env, timeout=300, cwd=REPO,
    )  # fmt: skip
    said = [x for x in done.stderr.splitlines() if x.strip() and not x.startswith("  ..")]
    assert done.returncode == 1, done.stderr
    assert len(said) == 1 and "no Azure credentials" in said[0], done.stderr


def test_status_says_an_external_sites_profile_is_missing(world: SandboxWorld, service, capsys):
    """Before: with the profile never written, `status` said healthy and nothing of it."""
    import json

    path = str(world.write_topology(partner=True, service=True))
    assert run(["apply", "-f", path, "--yes"]) == 0
    for connector in list(service.fake.state.connectors):  # the VMs dialled in
        service.fake.connect(connector)
    capsys.readouterr()
    assert run(["status", "-f", path]) == 0
    assert "its connector's profile" in capsys.readouterr().out
    (world.directory / "partner.ovpn").unlink()
    assert run(["status", "-f", path]) == 1
    out = capsys.readouterr().out
    assert "network partner (external): its connector's profile" in out and "MISSING" in out
    assert run(["status", "-f", path, "--json"]) == 1
    doc = json.loads(capsys.readouterr().out)
    assert doc["profiles_out"] == [
        {"network": "partner", "path": str(world.directory / "partner.ovpn"), "present": False}
    ]


def test_two_applies_at_once_make_one_service_connector_for_an_external_site(
    world: SandboxWorld, service, session
):
    """The VPN service's API writes nothing conditionally: a change there for an external
    site is made under the file's first managed network's lease. Its connector gone, two
    applies at once make one new one, not two."""
    from provisioner.lease import Locked

    path = world.write_topology(partner=True, service=True)
    assert run(["apply", "-f", str(path), "--yes"]) == 0
    fake = service.fake
    with fake.lock:
        (partner,) = [n for n in fake.state.networks.values() if n["name"] == "partner"]
    (gone,) = [c for c in fake.state.connectors.values() if c["networkItemId"] == partner["id"]]
    with fake.lock:  # someone removed it in the portal (the fake keeps a network's last one)
        del fake.state.connectors[gone["id"]]

    def make() -> Any:
        from provisioner import Deployment, load_topology
        from provisioner.providers import Clouds

        return Deployment(load_topology(path), Clouds(options={"aws": {"session": session}}))

    ended = _race(make)
    assert sorted(e is None for e in ended) == [False, True], ended
    assert isinstance([e for e in ended if e is not None][0], Locked)
    mine = [c for c in fake.state.connectors.values() if c["networkItemId"] == partner["id"]]
    assert len(mine) == 1, mine
