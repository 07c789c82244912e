"""The site CA: the broker's server certificate, gateways' client certificates, and its CRL.

A client certificate is valid until it expires, so revoking a gateway that logs in with one
needs a certificate revocation list: Mosquitto's ``crlfile`` makes OpenSSL refuse every
serial listed in it (after ``SIGHUP``). The CRL is signed by the CA key and rewritten only
when the list changes, so re-running ``provision`` changes no byte.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from collections.abc import Iterable
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from gateway.central.tools.provision.files import write_atomic
from gateway.errors import ConfigError

#: The CRL's next update: OpenSSL refuses every client once a CRL has expired, and the list is
#: rewritten by each revocation anyway, so it lives as long as the CA.
CRL_DAYS = 3650

CA_USAGE = x509.KeyUsage(
    digital_signature=True,
    key_cert_sign=True,
    crl_sign=True,
    content_commitment=False,
    key_encipherment=False,
    data_encipherment=False,
    key_agreement=False,
    encipher_only=False,
    decipher_only=False,
)


def _name(cn: str, site: str | None = None) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, "learnroom")]
    if site:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, site))
    attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, cn))
    return x509.Name(attrs)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def check_cert(data: bytes) -> None:
    x509.load_pem_x509_certificate(data)


def check_key(data: bytes) -> None:
    serialization.load_pem_private_key(data, None)


class CertificateAuthority:
    """A small CA for the broker's TLS listener: P-256 keys, ten years for the CA."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.key_path = directory / "ca.key"
        self.cert_path = directory / "ca.crt"
        self.crl_path = directory / "crl.pem"

    def ensure(self) -> list[str]:
        if self.cert_path.exists() and self.key_path.exists():
            return ["CA: already"]
        key = ec.generate_private_key(ec.SECP256R1())
        now = dt.datetime.now(dt.UTC)
        name = _name("learnroom site CA")
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(CA_USAGE, critical=True)
            .sign(key, hashes.SHA256())
        )
        write_atomic(self.key_path, _key_pem(key), 0o600, check_key)
        pem = cert.public_bytes(serialization.Encoding.PEM)
        write_atomic(self.cert_path, pem, 0o644, check_cert)
        return ["CA: created"]

    def _signer(self) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
        ca_key = serialization.load_pem_private_key(self.key_path.read_bytes(), None)
        if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
            raise ConfigError([f"{self.key_path}: not an EC private key"])
        return ca_key, x509.load_pem_x509_certificate(self.cert_path.read_bytes())

    def issue(
        self,
        cn: str,
        *,
        server_names: list[str] | None = None,
        site: str | None = None,
        days: int = 825,
    ) -> tuple[int, bytes, bytes]:
        """A leaf certificate (serial, certificate PEM, key PEM), not yet written anywhere.

        ``server_names`` makes it a server certificate with SANs.
        """
        ca_key, ca_cert = self._signer()
        key = ec.generate_private_key(ec.SECP256R1())
        now = dt.datetime.now(dt.UTC)
        serial = x509.random_serial_number()
        usage = ExtendedKeyUsageOID.SERVER_AUTH if server_names else ExtendedKeyUsageOID.CLIENT_AUTH
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(cn, site))
            .issuer_name(ca_cert.subject)
            .public_key(key.public_key())
            .serial_number(serial)
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        )
        if server_names:
            alt: list[x509.GeneralName] = []
            for n in server_names:
                try:
                    alt.append(x509.IPAddress(ipaddress.ip_address(n)))
                except ValueError:
                    alt.append(x509.DNSName(n))
            builder = builder.add_extension(x509.SubjectAlternativeName(alt), critical=False)
        cert = builder.sign(ca_key, hashes.SHA256())
        return int(serial), cert.public_bytes(serialization.Encoding.PEM), _key_pem(key)

    @staticmethod
    def write_leaf(cert: bytes, key: bytes, cert_path: Path, key_path: Path) -> None:
        write_atomic(key_path, key, 0o600, check_key)
        write_atomic(cert_path, cert, 0o644, check_cert)

    def listed(self) -> set[int]:
        """The serials the CRL on disk revokes (empty without one)."""
        if not self.crl_path.exists():
            return set()
        crl = x509.load_pem_x509_crl(self.crl_path.read_bytes())
        return {r.serial_number for r in crl}

    def write_crl(self, revoked: Iterable[tuple[int, dt.datetime]]) -> bool:
        """Sign and write the CRL if it lists other serials than ``revoked``; True if written."""
        entries = sorted(revoked)
        if self.crl_path.exists() and self.listed() == {s for s, _ in entries}:
            return False
        ca_key, ca_cert = self._signer()
        now = dt.datetime.now(dt.UTC)
        builder = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(ca_cert.subject)
            .last_update(now - dt.timedelta(minutes=5))
            .next_update(now + dt.timedelta(days=CRL_DAYS))
        )
        for serial, when in entries:
            builder = builder.add_revoked_certificate(
                x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(when).build()
            )
        crl = builder.sign(ca_key, hashes.SHA256())
        public = ca_cert.public_key()

        def check(data: bytes) -> None:
            loaded = x509.load_pem_x509_crl(data)
            if not isinstance(public, ec.EllipticCurvePublicKey) or not loaded.is_signature_valid(
                public
            ):
                raise ConfigError([f"{self.crl_path}: the CRL's signature does not verify"])

        write_atomic(self.crl_path, crl.public_bytes(serialization.Encoding.PEM), 0o644, check)
        return True
