"""Throwaway SSH keys for tests (generated per call; they protect nothing)."""

from __future__ import annotations

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

__all__ = ["make_ecdsa_key", "make_ed25519_key", "make_rsa_key"]


def _openssh(
    key: ed25519.Ed25519PrivateKey | rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey, password: bytes | None
) -> str:
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(password) if password else serialization.NoEncryption()
    )
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, encryption
    ).decode("ascii")


def make_ed25519_key(password: bytes | None = None) -> tuple[str, str]:
    """A new Ed25519 key: (OpenSSH private key PEM text, lowercase hex of the raw 32-byte public key)."""
    key = ed25519.Ed25519PrivateKey.generate()
    return _openssh(key, password), key.public_key().public_bytes_raw().hex()


def make_rsa_key() -> str:
    """A new 2048-bit RSA key as OpenSSH private key PEM text."""
    return _openssh(rsa.generate_private_key(public_exponent=65537, key_size=2048), None)


def make_ecdsa_key() -> str:
    """A new P-256 ECDSA key as OpenSSH private key PEM text."""
    return _openssh(ec.generate_private_key(ec.SECP256R1()), None)
