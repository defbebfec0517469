"""Authentication for Encord's v2 API: Ed25519 request signing and bearer tokens, as ``httpx.Auth`` flows.

The signature is the Encord SDK's (HTTP Message Signatures, label ``encord-sig``), reproduced byte for byte;
see encord-api.md §2.1 for the algorithm and test vectors. Credentials come only from the environment
(:func:`auth_from_env`), and no key material, password or token ever appears in a message, repr or log record.
"""

from __future__ import annotations

import base64
import hashlib
import os
import time
from collections.abc import Callable, Generator, Mapping

import httpx
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, rsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import load_ssh_private_key

from reconciler.errors import ProviderAuthError

__all__ = [
    "NO_CREDENTIALS_MESSAGE",
    "BearerAuth",
    "Ed25519SigningAuth",
    "auth_from_env",
    "load_ed25519_key",
]

ENV_KEY_FILE = "ENCORD_SSH_KEY_FILE"
ENV_KEY = "ENCORD_SSH_KEY"
ENV_KEY_PASSWORD = "ENCORD_SSH_KEY_PASSWORD"
ENV_TOKEN = "ENCORD_API_TOKEN"

NO_CREDENTIALS_MESSAGE = f"no Encord credentials: set {ENV_KEY_FILE}, {ENV_KEY} or {ENV_TOKEN}"

_SIGNATURE_LABEL = "encord-sig"
_OPENSSH_HEADER = b"-----BEGIN OPENSSH PRIVATE KEY-----"
#: The path of Encord's legacy v1 querier (datasets), which has its own signature (encord-api.md §2.3).
V1_PATH = "/public"


class Ed25519SigningAuth(httpx.Auth):
    """Sign every request the way the Encord SDK does (``Content-Digest``, ``Signature-Input``, ``Signature``).

    ``clock`` returns Unix seconds; it is injectable so that tests can reproduce the SDK's test vectors.
    """

    requires_request_body = True

    def __init__(self, private_key: Ed25519PrivateKey, *, clock: Callable[[], float] = time.time) -> None:
        self._private_key = private_key
        self._clock = clock
        self.key_id = private_key.public_key().public_bytes_raw().hex()

    def __repr__(self) -> str:
        # The key id is the public key: safe to show, and it tells users which key is in use.
        return f"Ed25519SigningAuth(keyid={self.key_id!r})"

    def signature_headers(self, method: str, target: str, body: bytes) -> dict[str, str]:
        """The three signing headers for a request (``target`` is the percent-encoded path plus query)."""
        digest = base64.b64encode(hashlib.sha256(body).digest()).decode("ascii")
        content_digest = f"sha-256=:{digest}:"
        created = int(self._clock())
        params = (
            '("@method" "@request-target" "content-digest")'
            f';created={created};keyid="{self.key_id}";alg="ed25519"'
        )
        base = "\n".join(
            [
                f'"@method": {method.upper()}',
                f'"@request-target": {target}',
                f'"content-digest": {content_digest}',
                f'"@signature-params": {params}',
            ]
        )
        signature = base64.b64encode(self._private_key.sign(base.encode("utf-8"))).decode("ascii")
        return {
            "Content-Digest": content_digest,
            "Signature-Input": f"{_SIGNATURE_LABEL}={params}",
            "Signature": f"{_SIGNATURE_LABEL}=:{signature}:",
        }

    def v1_authorization(self, body: bytes) -> str:
        """The legacy v1 ``Authorization`` value: ``<public key hex>:<hex Ed25519 signature of SHA-256(body)>``."""
        return f"{self.key_id}:{self._private_key.sign(hashlib.sha256(body).digest()).hex()}"

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        if request.url.path == V1_PATH:  # the legacy dataset querier signs the body's digest instead
            request.headers["Authorization"] = self.v1_authorization(request.content)
            yield request
            return
        target = request.url.raw_path.decode("ascii")
        request.headers.update(self.signature_headers(request.method, target, request.content))
        yield request


class BearerAuth(httpx.Auth):
    """``Authorization: Bearer <token>`` on every request."""

    def __init__(self, token: str) -> None:
        self._token = token

    def __repr__(self) -> str:
        return "BearerAuth(token=<hidden>)"

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = f"Bearer {self._token}"
        yield request


def _key_kind(key: object) -> str:
    if isinstance(key, rsa.RSAPrivateKey):
        return "an RSA key"
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return "an ECDSA key"
    if isinstance(key, dsa.DSAPrivateKey):
        return "a DSA key"
    if isinstance(key, ed448.Ed448PrivateKey):
        return "an Ed448 key"
    return f"a {type(key).__name__} key"


def _foreign_format(data: bytes) -> str | None:
    """Name a key format that is not OpenSSH's, to say what the user gave us instead."""
    text = data.lstrip()
    if text.startswith((b"ssh-", b"ecdsa-", b"sk-")):
        return "a public key, not a private key"
    for marker, kind in (
        (b"-----BEGIN RSA PRIVATE KEY-----", "a PEM RSA key"),
        (b"-----BEGIN EC PRIVATE KEY-----", "a PEM ECDSA key"),
        (b"-----BEGIN DSA PRIVATE KEY-----", "a PEM DSA key"),
        (b"-----BEGIN PRIVATE KEY-----", "a PKCS#8 PEM key"),
        (b"-----BEGIN ENCRYPTED PRIVATE KEY-----", "a PKCS#8 PEM key"),
        (b"PuTTY-User-Key-File", "a PuTTY key"),
    ):
        if text.startswith(marker):
            return kind
    return None


def load_ed25519_key(data: bytes, password: bytes | None, *, source: str) -> Ed25519PrivateKey:
    """Load an OpenSSH Ed25519 private key; ``source`` names where it came from in error messages.

    Raises:
        ProviderAuthError: not an OpenSSH private key, encrypted without a password, wrong password,
            or not an Ed25519 key. The message never contains key material.
    """
    if _OPENSSH_HEADER not in data:
        foreign = _foreign_format(data)
        hint = f" (it is {foreign})" if foreign else ""
        raise ProviderAuthError(
            f"{source} is not an OpenSSH private key{hint}; Encord needs an Ed25519 key in OpenSSH format "
            "(-----BEGIN OPENSSH PRIVATE KEY-----)"
        )
    password = password or None
    try:
        key = load_ssh_private_key(data, password)
    except TypeError as exc:
        if password is None:
            raise ProviderAuthError(f"{source} is encrypted: set {ENV_KEY_PASSWORD}") from exc
        # A password for a key that is not encrypted: use the key as it is.
        try:
            key = load_ssh_private_key(data, None)
        except (TypeError, ValueError, UnsupportedAlgorithm) as exc2:
            raise ProviderAuthError(f"{source} is not a valid OpenSSH private key") from exc2
    except UnsupportedAlgorithm as exc:
        raise ProviderAuthError(
            f"{source} is a key type that cannot be read; Encord needs an Ed25519 key"
        ) from exc
    except ValueError as exc:
        if password is not None and _is_encrypted(data):
            raise ProviderAuthError(
                f"{source}: wrong {ENV_KEY_PASSWORD} (the key cannot be decrypted)"
            ) from exc
        raise ProviderAuthError(
            f"{source} is not a valid OpenSSH private key (corrupt or truncated)"
        ) from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise ProviderAuthError(f"{source} is {_key_kind(key)}; Encord needs an Ed25519 key")
    return key


def _is_encrypted(data: bytes) -> bool:
    try:
        load_ssh_private_key(data, None)
    except TypeError:
        return True
    except (ValueError, UnsupportedAlgorithm):
        return False
    return False


def _env_value(env: Mapping[str, str], name: str) -> str | None:
    value = env.get(name)
    if value is None:
        return None
    if not value.strip():
        raise ProviderAuthError(f"{name} is set but empty")
    return value


def auth_from_env(env: Mapping[str, str], *, clock: Callable[[], float] = time.time) -> httpx.Auth:
    """Build the auth flow from the environment.

    Priority: ``ENCORD_SSH_KEY_FILE`` (a path, ``~`` expanded), then ``ENCORD_SSH_KEY`` (the key itself),
    each with the optional ``ENCORD_SSH_KEY_PASSWORD``; then ``ENCORD_API_TOKEN`` (a bearer token).

    Raises:
        ProviderAuthError: no credentials, an empty variable, an unreadable key file, or a key that is not a
            usable OpenSSH Ed25519 private key. Messages name variables and paths, never their secret content.
    """
    key_file = _env_value(env, ENV_KEY_FILE)
    key_text = _env_value(env, ENV_KEY) if key_file is None else None
    raw_password = env.get(ENV_KEY_PASSWORD)
    password = raw_password.encode("utf-8", "surrogateescape") if raw_password else None
    if key_file is not None:
        path = os.path.expanduser(key_file.strip())
        try:
            with open(path, "rb") as fh:
                data = fh.read()
        except OSError as exc:
            reason = exc.strerror or type(exc).__name__
            raise ProviderAuthError(f"{ENV_KEY_FILE}: cannot read key file {path}: {reason}") from exc
        return Ed25519SigningAuth(load_ed25519_key(data, password, source=f"key file {path}"), clock=clock)
    if key_text is not None:
        text = key_text.strip()
        if "\n" not in text and "\\n" in text:
            # CI systems often store multi-line secrets with literal "\n" sequences.
            text = text.replace("\\n", "\n")
        data = text.encode("utf-8", "surrogateescape") + b"\n"
        return Ed25519SigningAuth(load_ed25519_key(data, password, source=ENV_KEY), clock=clock)
    token = _env_value(env, ENV_TOKEN)
    if token is not None:
        token = token.strip()
        if not all(" " <= ch <= "~" for ch in token):
            # A header may hold no control character, and the error httpx would raise quotes the header.
            raise ProviderAuthError(
                f"{ENV_TOKEN} holds a character a token cannot have (a line break or another control or "
                "non-ASCII character); copy the token again"
            )
        return BearerAuth(token)
    raise ProviderAuthError(NO_CREDENTIALS_MESSAGE)
