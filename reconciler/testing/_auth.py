"""Checking Encord's v2 request authentication: Ed25519 HTTP message signatures and bearer tokens.

The signature scheme is the one of encord-api.md §2.1 (label ``encord-sig``, covered components
``"@method" "@request-target" "content-digest"``). Only verification lives here; the emulator never signs.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from collections.abc import Collection
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

__all__ = [
    "MAX_CLOCK_SKEW_S",
    "SIGNATURE_LABEL",
    "AuthError",
    "SignatureParams",
    "check_bearer",
    "content_digest",
    "normalise_public_key",
    "parse_signature_params",
    "signature_base",
    "verify_signature",
]

SIGNATURE_LABEL = "encord-sig"
#: How far ``created`` may be from the emulator's clock, either way (Encord's own window is unconfirmed).
MAX_CLOCK_SKEW_S = 60
_COVERED = ("@method", "@request-target", "content-digest")
_HEX64 = re.compile(r"[0-9a-fA-F]{64}")
_PARAM = re.compile(r';([a-z][a-z0-9_.*-]*)=("(?:[^"\\]|\\.)*"|-?[0-9]+)')
_INNER_LIST = re.compile(r'\(((?:"[^"]*"(?: "[^"]*")*)?)\)')


class AuthError(Exception):
    """A request whose credentials are missing or wrong; the message says which check failed."""


@dataclass(frozen=True)
class SignatureParams:
    """The parsed ``Signature-Input`` member: covered components and parameters, plus the raw text."""

    raw: str
    covered: tuple[str, ...]
    created: int
    keyid: str
    alg: str | None


def content_digest(body: bytes) -> str:
    """The ``Content-Digest`` value of a body: ``sha-256=:<base64 of SHA-256>:``."""
    return "sha-256=:" + base64.b64encode(hashlib.sha256(body).digest()).decode("ascii") + ":"


def normalise_public_key(key: str) -> str:
    """An authorized key as the lowercase hex of the raw 32-byte Ed25519 public key (the SDK's keyid).

    Accepts that hex form (64 characters) or an OpenSSH public key line (``ssh-ed25519 AAAA... comment``).

    Raises:
        ValueError: for anything else (including other key types).
    """
    text = key.strip()
    if _HEX64.fullmatch(text):
        return text.lower()
    if text.startswith("ssh-ed25519 "):
        try:
            public = serialization.load_ssh_public_key(text.encode("ascii"))
        except (ValueError, UnicodeEncodeError) as exc:
            raise ValueError(f"unreadable OpenSSH public key: {exc}") from exc
        if isinstance(public, Ed25519PublicKey):
            raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
            return raw.hex()
    raise ValueError(
        f"not an Ed25519 public key (64 hex characters or an 'ssh-ed25519 ...' line): {key[:80]!r}"
    )


def parse_signature_params(signature_input: str) -> SignatureParams:
    """Parse ``Signature-Input: encord-sig=("@method" ...);created=...;keyid="...";alg="ed25519"``."""
    prefix = SIGNATURE_LABEL + "="
    if not signature_input.startswith(prefix):
        raise AuthError(f"Signature-Input has no {SIGNATURE_LABEL!r} member")
    raw = signature_input[len(prefix) :]
    inner = _INNER_LIST.match(raw)
    if inner is None:
        raise AuthError("Signature-Input does not start with a list of covered components")
    covered = tuple(part.strip('"') for part in inner.group(1).split(" ")) if inner.group(1) else ()
    rest = raw[inner.end() :]
    params: dict[str, str] = {}
    pos = 0
    while pos < len(rest):
        m = _PARAM.match(rest, pos)
        if m is None:
            raise AuthError("Signature-Input has malformed parameters")
        params[m.group(1)] = m.group(2)
        pos = m.end()
    if sorted(covered) != sorted(_COVERED) or len(covered) != len(_COVERED):
        raise AuthError('the signature must cover exactly "@method", "@request-target" and "content-digest"')
    created = params.get("created")
    keyid = params.get("keyid")
    alg = params.get("alg")
    if created is None or created.startswith('"'):
        raise AuthError("Signature-Input needs an integer 'created' parameter")
    if keyid is None or not keyid.startswith('"'):
        raise AuthError("Signature-Input needs a string 'keyid' parameter")
    if alg is not None and alg != '"ed25519"':
        raise AuthError(f"unsupported signature algorithm {alg}")
    return SignatureParams(
        raw=raw,
        covered=covered,
        created=int(created),
        keyid=keyid.strip('"'),
        alg=alg.strip('"') if alg else None,
    )


def signature_base(method: str, request_target: str, digest: str, params: SignatureParams) -> str:
    """The text that was signed: one ``"<component>": <value>`` line per covered component, then the params."""
    values = {"@method": method.upper(), "@request-target": request_target, "content-digest": digest}
    lines = [f'"{name}": {values[name]}' for name in params.covered]
    lines.append(f'"@signature-params": {params.raw}')
    return "\n".join(lines)


def verify_signature(
    *,
    method: str,
    request_target: str,
    digest: str | None,
    signature_input: str | None,
    signature: str | None,
    body: bytes,
    authorized_keys: Collection[str] | None,
    now: float,
    max_skew_s: float = MAX_CLOCK_SKEW_S,
) -> str:
    """Verify a signed request and return its key id (the public key hex).

    ``request_target`` is the raw path and query exactly as received; ``digest``, ``signature_input`` and
    ``signature`` are the values of the three headers (None when absent). ``authorized_keys=None`` accepts
    any well-formed key whose signature verifies.

    Raises:
        AuthError: naming the first check that failed.
    """
    if not digest or not signature_input or not signature:
        raise AuthError("a signed request needs Content-Digest, Signature-Input and Signature headers")
    if not hmac.compare_digest(digest.strip(), content_digest(body)):
        raise AuthError("Content-Digest does not match the request body")
    params = parse_signature_params(signature_input.strip())
    if not _HEX64.fullmatch(params.keyid):
        raise AuthError("keyid must be the raw Ed25519 public key as 64 hex characters")
    keyid = params.keyid.lower()
    if authorized_keys is not None and keyid not in authorized_keys:
        raise AuthError("unknown public key")
    if abs(now - params.created) > max_skew_s:
        raise AuthError(
            f"signature 'created' is {int(now - params.created)} s away from the server clock "
            f"(at most {int(max_skew_s)} s allowed)"
        )
    sig_prefix = SIGNATURE_LABEL + "=:"
    sig_text = signature.strip()
    if not (sig_text.startswith(sig_prefix) and sig_text.endswith(":")):
        raise AuthError(f"Signature must be {SIGNATURE_LABEL}=:<base64>:")
    try:
        sig = base64.b64decode(sig_text[len(sig_prefix) : -1], validate=True)
    except binascii.Error as exc:
        raise AuthError("Signature is not valid base64") from exc
    base = signature_base(method, request_target, digest.strip(), params)
    try:
        Ed25519PublicKey.from_public_bytes(bytes.fromhex(keyid)).verify(sig, base.encode("utf-8"))
    except (InvalidSignature, ValueError) as exc:
        raise AuthError("signature does not verify") from exc
    return keyid


def check_bearer(authorization: str, tokens: Collection[str]) -> None:
    """Check ``Authorization: Bearer <token>`` against the accepted tokens (constant-time per token)."""
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthError("Authorization must be 'Bearer <token>'")
    token = token.strip()
    if not any(hmac.compare_digest(token.encode(), t.encode()) for t in tokens):
        raise AuthError("unknown bearer token")


def verify_v1_signature(authorization: str, body: bytes, authorized_keys: Collection[str] | None) -> str:
    """Verify a legacy v1 ``Authorization: <public key hex>:<signature hex>`` and return the key id.

    The signature is Ed25519 over the SHA-256 digest of the raw body (encord-api.md §2.3); v1 signatures carry
    no timestamp. ``authorized_keys=None`` accepts any key whose signature verifies.

    Raises:
        AuthError: naming the first check that failed.
    """
    keyid, sep, sig_hex = authorization.strip().partition(":")
    if not sep or not _HEX64.fullmatch(keyid):
        raise AuthError("v1 Authorization must be '<public key hex>:<signature hex>' or 'Bearer <token>'")
    keyid = keyid.lower()
    if authorized_keys is not None and keyid not in authorized_keys:
        raise AuthError("unknown public key")
    try:
        sig = bytes.fromhex(sig_hex)
    except ValueError as exc:
        raise AuthError("v1 signature is not hex") from exc
    try:
        Ed25519PublicKey.from_public_bytes(bytes.fromhex(keyid)).verify(sig, hashlib.sha256(body).digest())
    except (InvalidSignature, ValueError) as exc:
        raise AuthError("signature does not verify") from exc
    return keyid
