"""The apiserver's serving certificate: when does it expire? Read from the TLS handshake itself.

The certificate is read without verifying it (an expired or unknown certificate is exactly what this
check must be able to report); nothing is sent after the handshake.
"""

from __future__ import annotations

import socket
import ssl
from datetime import datetime

from cryptography import x509
from cryptography.x509.oid import ExtensionOID, NameOID

from incident.runbook import THRESHOLDS, Thresholds
from kube.checks import CheckContext, CheckSpec, Finding

HANDSHAKE_TIMEOUT_S = 10.0


def peer_certificate(host: str, port: int, timeout: float = HANDSHAKE_TIMEOUT_S) -> bytes:
    """The DER certificate the server presents (unverified)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with socket.create_connection((host, port), timeout=timeout) as raw:
        with context.wrap_socket(raw, server_hostname=host) as tls:
            der = tls.getpeercert(binary_form=True)
    if not der:
        raise ssl.SSLError("the server presented no certificate")
    return der


def judge_certificate(der: bytes, now: datetime, thresholds: Thresholds = THRESHOLDS) -> Finding:
    cert = x509.load_der_x509_certificate(der)
    not_after = cert.not_valid_after_utc
    days = (not_after - now).total_seconds() / 86400
    subject = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    try:
        names = cert.extensions.get_extension_for_oid(ExtensionOID.SUBJECT_ALTERNATIVE_NAME).value
        sans = [str(n) for n in names.get_values_for_type(x509.DNSName)][:10]
    except x509.ExtensionNotFound:
        sans = []
    facts = {"not_after": not_after.isoformat(), "days_left": round(days, 1),
             "subject": str(subject[0].value) if subject else "", "sans": sans}
    when = not_after.strftime("%Y-%m-%d %H:%M UTC")
    if days < 0:
        return Finding("fail", f"apiserver certificate EXPIRED on {when}", facts)
    if days < thresholds.cert_fail_days:
        return Finding("fail", f"apiserver certificate expires in {days:.1f} days ({when})", facts)
    if days < thresholds.cert_warn_days:
        return Finding("warn", f"apiserver certificate expires in {days:.0f} days ({when})", facts)
    return Finding("ok", f"apiserver certificate valid for {days:.0f} more days (until {when})", facts)


def check_certificates(ctx: CheckContext) -> Finding:
    host, port = ctx.kube.server_address
    if not ctx.kube.server.startswith("https"):
        return Finding("skipped", "the API server is not served over TLS", {})
    der = peer_certificate(host, port, min(HANDSHAKE_TIMEOUT_S, ctx.kube.timeout()))
    return judge_certificate(der, ctx.wall_clock(), ctx.thresholds)


CHECKS = (CheckSpec("certificates", "Certificates", check_certificates, timeout_s=15.0, needs_api=False),)
