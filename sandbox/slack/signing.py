"""Slack's request signing (v0, HMAC-SHA256), for every request the emulator sends to the bot.

Slack signs ``v0:{timestamp}:{raw body}`` with the app's signing secret and sends the hex digest
as ``X-Slack-Signature: v0=…`` next to ``X-Slack-Request-Timestamp``. Receivers reject
signatures that do not match and timestamps more than five minutes from their clock.
"""

from __future__ import annotations

import hashlib
import hmac
import time

VERSION = "v0"
SIGNATURE_HEADER = "X-Slack-Signature"
TIMESTAMP_HEADER = "X-Slack-Request-Timestamp"
RETRY_NUM_HEADER = "X-Slack-Retry-Num"
RETRY_REASON_HEADER = "X-Slack-Retry-Reason"


def signature(signing_secret: str, timestamp: int | str, body: bytes) -> str:
    """The ``X-Slack-Signature`` value for ``body`` sent at ``timestamp``."""
    base = f"{VERSION}:{timestamp}:".encode() + body
    digest = hmac.new(signing_secret.encode(), base, hashlib.sha256).hexdigest()
    return f"{VERSION}={digest}"


def signed_headers(signing_secret: str, body: bytes, *, timestamp: int | None = None,
                   bad_signature: bool = False) -> dict[str, str]:
    """Headers Slack adds to a request: timestamp and signature.

    ``timestamp`` overrides the current time (a stale one makes a replay the bot must refuse);
    ``bad_signature`` signs with a different secret, as a forger would.
    """
    ts = int(time.time()) if timestamp is None else int(timestamp)
    secret = signing_secret + "-forged" if bad_signature else signing_secret
    return {TIMESTAMP_HEADER: str(ts), SIGNATURE_HEADER: signature(secret, ts, body)}


def verify(signing_secret: str, body: bytes, headers: dict[str, str], *, max_age_seconds: int = 300,
           now: float | None = None) -> bool:
    """Whether ``headers`` carry a valid, fresh signature of ``body`` (the receiver's check)."""
    lowered = {k.lower(): v for k, v in headers.items()}
    ts = lowered.get(TIMESTAMP_HEADER.lower(), "")
    sig = lowered.get(SIGNATURE_HEADER.lower(), "")
    if not ts.isdigit():
        return False
    if abs((time.time() if now is None else now) - int(ts)) > max_age_seconds:
        return False
    return hmac.compare_digest(signature(signing_secret, ts, body), sig)
