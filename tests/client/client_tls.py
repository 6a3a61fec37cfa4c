"""Real TLS material for the client tests: a CA, a server and a client certificate.

Made fresh in each test session (EC P-256 keys, so it takes milliseconds), never
checked in: the test proves the CLI speaks TLS and mTLS to a server that checks
certificates the way a production gateway would.
"""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


@dataclass(frozen=True)
class Pem:
    """A certificate and its private key, PEM-encoded, and where they were written."""

    cert: bytes
    key: bytes
    cert_path: Path
    key_path: Path


@dataclass(frozen=True)
class Pki:
    ca: Pem
    server: Pem
    """For 127.0.0.1 and localhost."""
    client: Pem
    """A client identity (DNS SAN ``cli.imagegate.test``) issued by the same CA."""
    stranger: Pem
    """A client certificate from another CA, which the server must refuse."""


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _write(
    directory: Path, stem: str, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey
) -> Pem:
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    cert_path, key_path = directory / f"{stem}.pem", directory / f"{stem}.key"
    cert_path.write_bytes(cert_pem)
    key_path.write_bytes(key_pem)
    return Pem(cert_pem, key_pem, cert_path, key_path)


def _ca(directory: Path, stem: str) -> tuple[Pem, x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(f"imagegate test {stem}"))
        .issuer_name(_name(f"imagegate test {stem}"))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    return _write(directory, stem, cert, key), cert, key


def _leaf(
    directory: Path,
    stem: str,
    issuer: tuple[x509.Certificate, ec.EllipticCurvePrivateKey],
    names: list[x509.GeneralName],
    usage: x509.ObjectIdentifier,
) -> Pem:
    issuer_cert, issuer_key = issuer
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(stem))
        .issuer_name(issuer_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .sign(issuer_key, hashes.SHA256())
    )
    return _write(directory, stem, cert, key)


def make_pki(directory: Path) -> Pki:
    ca, ca_cert, ca_key = _ca(directory, "ca")
    server = _leaf(
        directory,
        "server",
        (ca_cert, ca_key),
        [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))],
        ExtendedKeyUsageOID.SERVER_AUTH,
    )
    client = _leaf(
        directory,
        "client",
        (ca_cert, ca_key),
        [x509.DNSName("cli.imagegate.test")],
        ExtendedKeyUsageOID.CLIENT_AUTH,
    )
    _, other_cert, other_key = _ca(directory, "other-ca")
    stranger = _leaf(
        directory,
        "stranger",
        (other_cert, other_key),
        [x509.DNSName("stranger.imagegate.test")],
        ExtendedKeyUsageOID.CLIENT_AUTH,
    )
    return Pki(ca, server, client, stranger)
