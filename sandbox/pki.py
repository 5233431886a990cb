"""Certificates, keys and kubeconfigs for the local control plane, written as files.

One throw-away CA signs the kube-apiserver serving certificate and one client certificate per
component; the service-account token key pair is RSA (what ``--service-account-*`` flags expect in
every Kubernetes release). Identities match the bootstrap RBAC roles of a real cluster, so
authorization really runs: ``system:kube-controller-manager`` and ``system:kube-scheduler`` get exactly
their built-in permissions, while the admin and kwok identities are in ``system:masters``.

Used by :mod:`sandbox.cluster`; everything lands in one directory per cluster.
"""

from __future__ import annotations

import base64
import datetime as dt
import ipaddress
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

SERVICE_IP = "10.0.0.1"
"""First address of ``--service-cluster-ip-range=10.0.0.0/24``: the ``kubernetes`` Service."""

APISERVER_DNS_NAMES: tuple[str, ...] = (
    "localhost",
    "kubernetes",
    "kubernetes.default",
    "kubernetes.default.svc",
    "kubernetes.default.svc.cluster.local",
)
APISERVER_IPS: tuple[str, ...] = ("127.0.0.1", SERVICE_IP)

CLIENTS: dict[str, tuple[str, tuple[str, ...]]] = {
    "admin": ("kubernetes-admin", ("system:masters",)),
    "kube-controller-manager": ("system:kube-controller-manager", ()),
    "kube-scheduler": ("system:kube-scheduler", ()),
    "kwok": ("kwok-controller", ("system:masters",)),
}
"""Client identities: file stem -> (common name, organizations)."""

CLUSTER_NAME = "k8s-incident-bot-sandbox"
_VALIDITY = dt.timedelta(days=365)

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


@dataclass(frozen=True)
class CertPair:
    """A certificate file and its private-key file."""

    cert: Path
    key: Path


@dataclass(frozen=True)
class Pki:
    """Paths of everything :func:`create_pki` wrote."""

    directory: Path
    ca: CertPair
    apiserver: CertPair
    service_account_key: Path
    service_account_pub: Path
    clients: dict[str, CertPair] = field(default_factory=dict)


def _new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _write_key(path: Path, key: PrivateKey) -> None:
    path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    path.chmod(0o600)


def _write_cert(path: Path, cert: x509.Certificate) -> None:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def _name(common_name: str, organizations: tuple[str, ...] = ()) -> x509.Name:
    attributes = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, org) for org in organizations]
    attributes.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
    return x509.Name(attributes)


def _builder(subject: x509.Name, issuer: x509.Name, public_key: ec.EllipticCurvePublicKey) -> x509.CertificateBuilder:
    now = dt.datetime.now(dt.timezone.utc)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + _VALIDITY)
    )


def _create_ca(directory: Path) -> tuple[CertPair, x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = _new_key()
    subject = _name(f"{CLUSTER_NAME}-ca")
    cert = (
        _builder(subject, subject, key.public_key())
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False, data_encipherment=False,
                key_agreement=False, key_cert_sign=True, crl_sign=True, encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    pair = CertPair(directory / "ca.crt", directory / "ca.key")
    _write_cert(pair.cert, cert)
    _write_key(pair.key, key)
    return pair, cert, key


def _issue(
    directory: Path,
    stem: str,
    subject: x509.Name,
    usage: x509.ObjectIdentifier,
    ca_cert: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
    sans: list[x509.GeneralName] | None = None,
) -> CertPair:
    key = _new_key()
    builder = (
        _builder(subject, ca_cert.subject, key.public_key())
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False, data_encipherment=False,
                key_agreement=False, key_cert_sign=False, crl_sign=False, encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
    )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    pair = CertPair(directory / f"{stem}.crt", directory / f"{stem}.key")
    _write_cert(pair.cert, builder.sign(ca_key, hashes.SHA256()))
    _write_key(pair.key, key)
    return pair


def create_pki(directory: Path) -> Pki:
    """Write a fresh CA, serving/client certificates and the service-account key pair into ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    ca, ca_cert, ca_key = _create_ca(directory)
    sans: list[x509.GeneralName] = [x509.DNSName(name) for name in APISERVER_DNS_NAMES]
    sans += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in APISERVER_IPS]
    apiserver = _issue(
        directory, "apiserver", _name("kube-apiserver"), ExtendedKeyUsageOID.SERVER_AUTH, ca_cert, ca_key, sans
    )
    clients = {
        stem: _issue(directory, stem, _name(cn, orgs), ExtendedKeyUsageOID.CLIENT_AUTH, ca_cert, ca_key)
        for stem, (cn, orgs) in CLIENTS.items()
    }
    sa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    sa_key_path, sa_pub_path = directory / "sa.key", directory / "sa.pub"
    _write_key(sa_key_path, sa_key)
    sa_pub_path.write_bytes(
        sa_key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    return Pki(directory, ca, apiserver, sa_key_path, sa_pub_path, clients)


def _b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode("ascii")


def kubeconfig_document(server: str, ca_cert: Path, client: CertPair, user: str) -> dict[str, object]:
    """A kubeconfig (as a dict) with the CA and client credentials embedded, one context, selected."""
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": CLUSTER_NAME, "cluster": {"server": server, "certificate-authority-data": _b64(ca_cert)}}
        ],
        "users": [
            {"name": user, "user": {"client-certificate-data": _b64(client.cert), "client-key-data": _b64(client.key)}}
        ],
        "contexts": [{"name": f"{user}@{CLUSTER_NAME}", "context": {"cluster": CLUSTER_NAME, "user": user}}],
        "current-context": f"{user}@{CLUSTER_NAME}",
        "preferences": {},
    }


def write_kubeconfigs(pki: Pki, server: str, directory: Path) -> dict[str, Path]:
    """Write ``<component>.kubeconfig`` for every client identity; returns component -> path."""
    directory.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    for stem, pair in pki.clients.items():
        path = directory / f"{stem}.kubeconfig"
        path.write_text(yaml.safe_dump(kubeconfig_document(server, pki.ca.cert, pair, stem), sort_keys=False))
        path.chmod(0o600)
        paths[stem] = path
    return paths
