"""Signature verification against encord-api.md §2.1's deterministic vectors, and its failure modes."""

from __future__ import annotations

from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from reconciler.testing._auth import (
    AuthError,
    check_bearer,
    content_digest,
    normalise_public_key,
    parse_signature_params,
    verify_signature,
)
from tests.emulator.signing import public_hex, sign_headers

SEED_KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
KEYID = "03a107bff3ce10be1d70dd18e74bc09967e4d6309ba50d5f1ddc8664125531b8"
CREATED = 1700000000
EMPTY_DIGEST = "sha-256=:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=:"
PARAMS = f'("@method" "@request-target" "content-digest");created={CREATED};keyid="{KEYID}";alg="ed25519"'
GET_TARGET = "/v2/public/organisation/client-metadata-schema-v2"
GET_SIG = (
    "encord-sig=:lsk48mwjuvB9KcWdDmnNowb157P2AsQrTv8WY8vZkh6ugGfpOkqJm0QfdLw0u0sr/Qf/5pN+PluvTwJg5WXHAQ==:"
)
PATCH_TARGET = "/v2/public/storage/items/patch-bulk"
PATCH_BODY = b'{"itemPatches": {"00000000-0000-0000-0000-000000000001": {"clientMetadata": {"k": "v"}}}}'
PATCH_DIGEST = "sha-256=:SIzFY/X/HKGzfIqegvBSbP3gFNcRX7ezi2aiPixBEXM=:"
PATCH_SIG = (
    "encord-sig=:JpCzPge9fRNwQcI+DVLahhZS8XBh9jDTy+uW3hghuxEKIs9qoFsOl+hvHFtacUbZojekuJew27EjUb873pedBA==:"
)


def verify(
    method: str,
    target: str,
    digest: str | None,
    sig_input: str | None,
    sig: str | None,
    body: bytes,
    *,
    keys: frozenset[str] | None = frozenset({KEYID}),
    now: float = CREATED,
) -> str:
    return verify_signature(
        method=method,
        request_target=target,
        digest=digest,
        signature_input=sig_input,
        signature=sig,
        body=body,
        authorized_keys=keys,
        now=now,
    )


def test_seed_key_gives_the_documented_keyid():
    assert public_hex(SEED_KEY) == KEYID


def test_content_digests_match_the_vectors():
    assert content_digest(b"") == EMPTY_DIGEST
    assert content_digest(PATCH_BODY) == PATCH_DIGEST


def test_get_vector_verifies():
    assert verify("GET", GET_TARGET, EMPTY_DIGEST, "encord-sig=" + PARAMS, GET_SIG, b"") == KEYID


def test_patch_vector_verifies():
    assert verify("PATCH", PATCH_TARGET, PATCH_DIGEST, "encord-sig=" + PARAMS, PATCH_SIG, PATCH_BODY) == KEYID


def test_test_signer_reproduces_the_vectors():
    get = sign_headers(SEED_KEY, "GET", GET_TARGET, b"", CREATED)
    patch = sign_headers(SEED_KEY, "PATCH", PATCH_TARGET, PATCH_BODY, CREATED)
    assert get == {
        "Content-Digest": EMPTY_DIGEST,
        "Signature-Input": "encord-sig=" + PARAMS,
        "Signature": GET_SIG,
    }
    assert patch["Content-Digest"] == PATCH_DIGEST
    assert patch["Signature"] == PATCH_SIG


def test_any_key_mode_accepts_the_vector():
    assert verify("GET", GET_TARGET, EMPTY_DIGEST, "encord-sig=" + PARAMS, GET_SIG, b"", keys=None) == KEYID


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"method": "POST"}, "signature does not verify"),
        ({"target": GET_TARGET + "?x=1"}, "signature does not verify"),
        ({"body": b"{}"}, "Content-Digest does not match the request body"),
        ({"keys": frozenset({"00" * 32})}, "unknown public key"),
        (
            {"now": CREATED + 61},
            "signature 'created' is 61 s away from the server clock (at most 60 s allowed)",
        ),
        (
            {"now": CREATED - 61},
            "signature 'created' is -61 s away from the server clock (at most 60 s allowed)",
        ),
        ({"sig": "encord-sig=:AAAA:"}, "signature does not verify"),
        ({"sig": "encord-sig=:!!:"}, "Signature is not valid base64"),
        ({"sig": "other=:AAAA:"}, "Signature must be encord-sig=:<base64>:"),
        ({"sig_input": "other=" + PARAMS}, "Signature-Input has no 'encord-sig' member"),
        ({"digest": None}, "a signed request needs Content-Digest, Signature-Input and Signature headers"),
    ],
)
def test_tampered_requests_are_refused(change, message):
    args: dict[str, Any] = {
        "method": "GET",
        "target": GET_TARGET,
        "digest": EMPTY_DIGEST,
        "sig_input": "encord-sig=" + PARAMS,
        "sig": GET_SIG,
        "body": b"",
        "keys": frozenset({KEYID}),
        "now": CREATED,
    }
    args.update(change)
    with pytest.raises(AuthError) as info:
        verify(
            args["method"], args["target"], args["digest"], args["sig_input"], args["sig"], args["body"],
            keys=args["keys"], now=args["now"],
        )  # fmt: skip
    assert str(info.value) == message


def test_within_the_window_is_accepted():
    sig_input = "encord-sig=" + PARAMS
    assert verify("GET", GET_TARGET, EMPTY_DIGEST, sig_input, GET_SIG, b"", now=CREATED + 60) == KEYID
    assert verify("GET", GET_TARGET, EMPTY_DIGEST, sig_input, GET_SIG, b"", now=CREATED - 60) == KEYID


def test_signature_must_cover_the_three_components():
    partial = f'encord-sig=("@method" "@request-target");created={CREATED};keyid="{KEYID}";alg="ed25519"'
    with pytest.raises(AuthError, match="must cover exactly"):
        parse_signature_params(partial)


def test_signature_params_are_parsed():
    params = parse_signature_params("encord-sig=" + PARAMS)
    assert (params.covered, params.created, params.keyid, params.alg, params.raw) == (
        ("@method", "@request-target", "content-digest"),
        CREATED,
        KEYID,
        "ed25519",
        PARAMS,
    )


@pytest.mark.parametrize(
    "bad",
    [
        f'encord-sig=("@method" "@request-target" "content-digest");created="x";keyid="{KEYID}"',
        'encord-sig=("@method" "@request-target" "content-digest");created=1;keyid=5',
        f'encord-sig=("@method" "@request-target" "content-digest");created=1;keyid="{KEYID}";alg="rsa"',
        'encord-sig=("@method" "@request-target" "content-digest");created=1;;',
        "encord-sig=nonsense",
    ],
)
def test_malformed_signature_input_is_refused(bad):
    with pytest.raises(AuthError):
        parse_signature_params(bad)


def test_public_keys_normalise_from_hex_and_openssh():
    from cryptography.hazmat.primitives import serialization

    line = (
        SEED_KEY.public_key()
        .public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
        .decode()
    )
    assert normalise_public_key(KEYID.upper()) == KEYID
    assert normalise_public_key(line + " me@host") == KEYID
    with pytest.raises(ValueError, match="not an Ed25519 public key"):
        normalise_public_key("abc")


def test_bearer_tokens():
    check_bearer("Bearer tok", {"tok"})
    check_bearer("bearer  tok ", {"tok"})
    with pytest.raises(AuthError, match="unknown bearer token"):
        check_bearer("Bearer nope", {"tok"})
    with pytest.raises(AuthError, match="Authorization must be 'Bearer <token>'"):
        check_bearer("Basic dXNlcg==", {"tok"})
