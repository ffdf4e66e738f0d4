"""A throwaway PKI for the lab's OpenVPN: a CA, a server and clients (EC P-256, openssl)."""

from __future__ import annotations

import subprocess
from pathlib import Path


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_ca(directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    _openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "ca.key", cwd=directory)
    _openssl(
        "req",
        "-x509",
        "-new",
        "-key",
        "ca.key",
        "-days",
        "2",
        "-subj",
        "/CN=lab-ca",
        "-out",
        "ca.crt",
        cwd=directory,
    )


def make_cert(directory: Path, name: str, server: bool = False) -> None:
    usage = "serverAuth" if server else "clientAuth"
    (directory / f"{name}.ext").write_text(
        f"basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyAgreement\nextendedKeyUsage={usage}\n"
    )
    _openssl(
        "ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", f"{name}.key", cwd=directory
    )
    _openssl(
        "req",
        "-new",
        "-key",
        f"{name}.key",
        "-subj",
        f"/CN={name}",
        "-out",
        f"{name}.csr",
        cwd=directory,
    )
    _openssl(
        "x509",
        "-req",
        "-in",
        f"{name}.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        f"{name}.ext",
        "-out",
        f"{name}.crt",
        cwd=directory,
    )


def client_profile(
    directory: Path, name: str, remote: str, extra: str = "", port: int = 1194
) -> Path:
    """An inline client profile, as a VPN service hands out."""
    pem = {
        k: (directory / f"{n}").read_text()
        for k, n in (("ca", "ca.crt"), ("cert", f"{name}.crt"), ("key", f"{name}.key"))
    }
    profile = directory / f"{name}.ovpn"
    profile.write_text(
        f"client\ndev tun\nproto udp\nremote {remote} {port}\nnobind\nremote-cert-tls server\n"
        f"connect-retry 1 1\nverb 3\n{extra}"
        f"<ca>\n{pem['ca']}</ca>\n<cert>\n{pem['cert']}</cert>\n<key>\n{pem['key']}</key>\n"
    )
    profile.chmod(0o600)
    return profile
