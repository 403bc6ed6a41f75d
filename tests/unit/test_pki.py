"""The throw-away CA issues certificates that say what Kubernetes reads from them."""

from __future__ import annotations

import ipaddress

from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from metalk8s_solutions.testing.pki import CertificateAuthority


def test_client_certificate_carries_user_and_groups() -> None:
    ca = CertificateAuthority.create()
    pair = ca.issue("alice", organizations=("viewers", "ops"), client=True)
    cert = x509.load_pem_x509_certificate(pair.cert_pem)
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "alice"
    groups = [a.value for a in cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)]
    assert groups == ["viewers", "ops"]
    usage = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usage) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    cert.verify_directly_issued_by(ca.cert)


def test_serving_certificate_names_loopback() -> None:
    ca = CertificateAuthority.create()
    pair = ca.issue("api", dns_names=("localhost",), ip_addresses=("127.0.0.1",), server=True)
    cert = x509.load_pem_x509_certificate(pair.cert_pem)
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["localhost"]
    assert san.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1")]


def test_ca_round_trips_through_files(tmp_path) -> None:  # type: ignore[no-untyped-def]
    ca = CertificateAuthority.create()
    (tmp_path / "ca.crt").write_bytes(ca.cert_pem)
    (tmp_path / "ca.key").write_bytes(ca.key_pem)
    again = CertificateAuthority.load(tmp_path / "ca.crt", tmp_path / "ca.key")
    leaf = x509.load_pem_x509_certificate(again.issue("bob", client=True).cert_pem)
    leaf.verify_directly_issued_by(ca.cert)
