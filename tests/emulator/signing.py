"""A test-side signer for Encord's Ed25519 request signatures (encord-api.md §2.1), written from the spec.

Independent of the emulator's verifier, so that each checks the other (and both check the spec's vectors).
"""

from __future__ import annotations

import base64
import hashlib
import time
from collections.abc import Generator

import httpx
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey


def load_ed25519(key_text: str) -> Ed25519PrivateKey:
    key = serialization.load_ssh_private_key(key_text.encode("ascii"), password=None)
    assert isinstance(key, Ed25519PrivateKey)
    return key


def public_hex(key: Ed25519PrivateKey) -> str:
    return key.public_key().public_bytes_raw().hex()


def sign_headers(
    key: Ed25519PrivateKey, method: str, target: str, body: bytes, created: int, *, digest: str | None = None
) -> dict[str, str]:
    """The three signing headers for a request (``digest`` overrides the computed Content-Digest)."""
    if digest is None:
        digest = "sha-256=:" + base64.b64encode(hashlib.sha256(body).digest()).decode() + ":"
    params = (
        f'("@method" "@request-target" "content-digest");created={created};'
        f'keyid="{public_hex(key)}";alg="ed25519"'
    )
    base = "\n".join(
        [
            f'"@method": {method.upper()}',
            f'"@request-target": {target}',
            f'"content-digest": {digest}',
            f'"@signature-params": {params}',
        ]
    )
    signature = base64.b64encode(key.sign(base.encode())).decode()
    return {
        "Content-Digest": digest,
        "Signature-Input": f"encord-sig={params}",
        "Signature": f"encord-sig=:{signature}:",
    }


class SignedAuth(httpx.Auth):
    """httpx auth that signs every request; ``skew_s`` shifts ``created`` to test the clock window."""

    requires_request_body = True

    def __init__(self, key: Ed25519PrivateKey, *, skew_s: int = 0) -> None:
        self.key = key
        self.skew_s = skew_s

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        target = request.url.raw_path.decode("ascii")
        created = int(time.time()) + self.skew_s
        request.headers.update(sign_headers(self.key, request.method, target, request.content, created))
        yield request
