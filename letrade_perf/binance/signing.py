"""Request signing (HMAC-SHA256 and Ed25519) for REST and the WebSocket API.

Signing is separate from sending: callers build the exact payload bytes, sign them here, and
send what they signed. The simulator uses :func:`verify` on the same payload rules.
"""
from __future__ import annotations

import base64
import hmac
from typing import Iterable, Mapping
from urllib.parse import quote, quote_plus

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

HMAC = "HMAC"
ED25519 = "ED25519"


def encode_params(params: Mapping[str, object] | Iterable[tuple[str, object]]) -> str:
    """URL-encode parameters in the given order (non-ASCII percent-encoded, as Binance requires).

    Same bytes as ``urlencode``; names and values made only of ASCII letters and digits (most
    of them: symbols, ids, timestamps) skip the quoting, which is most of its cost per request.
    """
    items = params.items() if isinstance(params, Mapping) else params
    out = []
    for k, v in items:
        v = _str(v)
        if not (k.isascii() and k.isalnum()):
            k = quote_plus(k)
        if not (v.isascii() and v.isalnum()):
            v = quote_plus(v)
        out.append(f"{k}={v}")
    return "&".join(out)


def _str(v: object) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def hmac_sha256(secret: str | bytes, payload: str) -> str:
    """Lower-case hex HMAC-SHA256 of ``payload`` with ``secret``."""
    key = secret.encode() if isinstance(secret, str) else secret
    return hmac.digest(key, payload.encode(), "sha256").hex()


def load_ed25519_private(pem: str | bytes) -> Ed25519PrivateKey:
    data = pem.encode() if isinstance(pem, str) else pem
    key = serialization.load_pem_private_key(data, password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError("not an Ed25519 private key")
    return key


def load_ed25519_public(pem: str | bytes) -> Ed25519PublicKey:
    data = pem.encode() if isinstance(pem, str) else pem
    key = serialization.load_pem_public_key(data)
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError("not an Ed25519 public key")
    return key


def ed25519_sign(private_key: Ed25519PrivateKey | str | bytes, payload: str) -> str:
    """Base64 Ed25519 signature of ``payload`` (not yet percent-encoded)."""
    if not isinstance(private_key, Ed25519PrivateKey):
        private_key = load_ed25519_private(private_key)
    return base64.b64encode(private_key.sign(payload.encode())).decode()


def sign(key_type: str, secret: str | bytes, payload: str) -> str:
    """Signature of ``payload`` for a key of ``key_type`` (HMAC: hex; ED25519: base64)."""
    if key_type == HMAC:
        return hmac_sha256(secret, payload)
    if key_type == ED25519:
        return ed25519_sign(secret, payload)
    raise ValueError(f"unsupported key type {key_type!r}")


def signed_query(key_type: str, secret: str | bytes, params: Mapping[str, object]) -> str:
    """``params`` URL-encoded with ``&signature=`` appended (percent-encoded for Ed25519)."""
    payload = encode_params(params)
    sig = sign(key_type, secret, payload)
    return f"{payload}&signature={sig if key_type == HMAC else quote(sig, safe='')}"


def ws_api_payload(params: Mapping[str, object]) -> str:
    """WebSocket API signature payload: params except ``signature``, sorted by name, ``k=v&...``."""
    return "&".join(f"{k}={_str(v)}" for k, v in sorted(params.items()) if k != "signature")


def verify_hmac(secret: str, payload: str, signature: str) -> bool:
    """Binance compares HMAC signatures case-insensitively."""
    expected = hmac_sha256(secret, payload)
    return hmac.compare_digest(expected, signature.lower())


def verify_ed25519(public_key: Ed25519PublicKey, payload: str, signature_b64: str) -> bool:
    try:
        raw = base64.b64decode(signature_b64, validate=True)
        public_key.verify(raw, payload.encode())
        return True
    except (InvalidSignature, ValueError, TypeError):
        return False


def generate_ed25519() -> tuple[str, str]:
    """A fresh Ed25519 key pair as (private PEM, public PEM)."""
    key = Ed25519PrivateKey.generate()
    priv = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()
    pub = key.public_key().public_bytes(serialization.Encoding.PEM,
                                        serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    return priv, pub
