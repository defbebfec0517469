"""Ed25519 request signing (the SDK's test vectors), bearer tokens, and credentials from the environment."""

from __future__ import annotations

import base64
import json
import logging
import os
import stat
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from reconciler.errors import ProviderAuthError
from reconciler.providers.encord.auth import BearerAuth, Ed25519SigningAuth, auth_from_env
from tests.helpers.keys import make_ecdsa_key, make_ed25519_key, make_rsa_key

VECTOR_KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
VECTOR_KEYID = "03a107bff3ce10be1d70dd18e74bc09967e4d6309ba50d5f1ddc8664125531b8"
VECTOR_PARAMS = (
    f'("@method" "@request-target" "content-digest");created=1700000000;keyid="{VECTOR_KEYID}";alg="ed25519"'
)
EMPTY_DIGEST = "sha-256=:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=:"


def _send(auth: httpx.Auth, method: str, url: str, content: bytes | None = None) -> httpx.Request:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(204)

    with httpx.Client(transport=httpx.MockTransport(handler), auth=auth) as client:
        client.request(method, url, content=content)
    return seen[0]


def _vector_auth() -> Ed25519SigningAuth:
    # 1700000000.9 also checks that ``created`` truncates like int(time.time()).
    return Ed25519SigningAuth(VECTOR_KEY, clock=lambda: 1700000000.9)


class TestSigningVectors:
    def test_get_vector(self) -> None:
        request = _send(
            _vector_auth(), "GET", "https://api.encord.com/v2/public/organisation/client-metadata-schema-v2"
        )
        assert request.headers["Content-Digest"] == EMPTY_DIGEST
        assert request.headers["Signature-Input"] == f"encord-sig={VECTOR_PARAMS}"
        assert request.headers["Signature"] == (
            "encord-sig=:lsk48mwjuvB9KcWdDmnNowb157P2AsQrTv8WY8vZkh6ugGfpOkqJm0QfdLw0u0sr/Qf/5pN+PluvTwJg5WXHAQ==:"
        )
        assert "Authorization" not in request.headers

    def test_patch_vector(self) -> None:
        body = b'{"itemPatches": {"00000000-0000-0000-0000-000000000001": {"clientMetadata": {"k": "v"}}}}'
        assert json.dumps(json.loads(body)).encode() == body  # the bytes json.dumps produces, as the SDK
        request = _send(
            _vector_auth(), "PATCH", "https://api.encord.com/v2/public/storage/items/patch-bulk", body
        )
        assert request.headers["Content-Digest"] == "sha-256=:SIzFY/X/HKGzfIqegvBSbP3gFNcRX7ezi2aiPixBEXM=:"
        assert request.headers["Signature-Input"] == f"encord-sig={VECTOR_PARAMS}"
        assert request.headers["Signature"] == (
            "encord-sig=:JpCzPge9fRNwQcI+DVLahhZS8XBh9jDTy+uW3hghuxEKIs9qoFsOl+hvHFtacUbZojekuJew27EjUb873pedBA==:"
        )

    def test_keyid_is_raw_public_key_hex(self) -> None:
        auth = _vector_auth()
        assert auth.key_id == VECTOR_KEYID
        assert repr(auth) == f"Ed25519SigningAuth(keyid='{VECTOR_KEYID}')"

    def test_request_target_is_raw_path_and_query_as_sent(self) -> None:
        auth = _vector_auth()
        url = "http://127.0.0.1:9/v2/public/storage/folders?search=a+b%2Fc&isRecursive=False&pageSize=1000"
        request = _send(auth, "GET", url)
        base = "\n".join(
            [
                '"@method": GET',
                '"@request-target": /v2/public/storage/folders?search=a+b%2Fc&isRecursive=False&pageSize=1000',
                f'"content-digest": {EMPTY_DIGEST}',
                f'"@signature-params": {VECTOR_PARAMS}',
            ]
        )
        signature = base64.b64decode(
            request.headers["Signature"].removeprefix("encord-sig=:").removesuffix(":")
        )
        public = Ed25519PublicKey.from_public_bytes(bytes.fromhex(VECTOR_KEYID))
        public.verify(signature, base.encode())  # raises InvalidSignature when the base differs

    def test_created_follows_the_clock(self) -> None:
        now = [1700000000.0]
        auth = Ed25519SigningAuth(VECTOR_KEY, clock=lambda: now[0])
        first = _send(auth, "GET", "https://api.encord.com/v2/public/x")
        now[0] = 1700000061.5
        second = _send(auth, "GET", "https://api.encord.com/v2/public/x")
        assert ";created=1700000000;" in first.headers["Signature-Input"]
        assert ";created=1700000061;" in second.headers["Signature-Input"]


def test_bearer_auth_sets_header_and_hides_token() -> None:
    auth = BearerAuth("tok-secret-123")
    request = _send(auth, "GET", "https://api.encord.com/v2/public/x")
    assert request.headers["Authorization"] == "Bearer tok-secret-123"
    assert "Signature" not in request.headers
    assert "tok-secret-123" not in repr(auth)


# -- credentials from the environment -------------------------------------------------------------------------


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def _error(env: dict[str, str]) -> str:
    with pytest.raises(ProviderAuthError) as info:
        auth_from_env(env)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_no_credentials() -> None:
    assert _error({}) == "no Encord credentials: set ENCORD_SSH_KEY_FILE, ENCORD_SSH_KEY or ENCORD_API_TOKEN"


@pytest.mark.parametrize("name", ["ENCORD_SSH_KEY_FILE", "ENCORD_SSH_KEY", "ENCORD_API_TOKEN"])
@pytest.mark.parametrize("value", ["", "  \n"])
def test_empty_variable(name: str, value: str) -> None:
    assert _error({name: value}) == f"{name} is set but empty"


@pytest.mark.parametrize("token", ["SECRET-TOK\nX", "SECRET\rTOK", "SECRET\x00TOK", "SECRET\u00e9TOK"])
def test_a_token_with_a_character_no_header_can_hold_is_refused_without_echoing_it(token: str) -> None:
    message = _error({"ENCORD_API_TOKEN": token})
    assert message == (
        "ENCORD_API_TOKEN holds a character a token cannot have (a line break or another control or non-ASCII "
        "character); copy the token again"
    )
    assert "SECRET" not in message


def test_a_token_keeps_its_inner_spaces_and_loses_the_outer_ones() -> None:
    auth = auth_from_env({"ENCORD_API_TOKEN": "  abc def\n"})
    request = next(auth.auth_flow(httpx.Request("GET", "https://api.encord.com/x")))
    assert request.headers["Authorization"] == "Bearer abc def"


def test_key_file_loads_and_signs(tmp_path: Path) -> None:
    pem, pub = make_ed25519_key()
    auth = auth_from_env({"ENCORD_SSH_KEY_FILE": str(_write(tmp_path / "id", pem))})
    assert isinstance(auth, Ed25519SigningAuth)
    assert auth.key_id == pub


def test_key_file_tilde_is_expanded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pem, pub = make_ed25519_key()
    _write(tmp_path / "id", pem)
    monkeypatch.setenv("HOME", str(tmp_path))
    auth = auth_from_env({"ENCORD_SSH_KEY_FILE": "~/id"})
    assert isinstance(auth, Ed25519SigningAuth)
    assert auth.key_id == pub


def test_key_file_missing(tmp_path: Path) -> None:
    path = tmp_path / "nope"
    assert _error({"ENCORD_SSH_KEY_FILE": str(path)}) == (
        f"ENCORD_SSH_KEY_FILE: cannot read key file {path}: No such file or directory"
    )


def test_key_file_is_a_directory(tmp_path: Path) -> None:
    assert _error({"ENCORD_SSH_KEY_FILE": str(tmp_path)}) == (
        f"ENCORD_SSH_KEY_FILE: cannot read key file {tmp_path}: Is a directory"
    )


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root reads any file")
def test_key_file_unreadable(tmp_path: Path) -> None:
    pem, _ = make_ed25519_key()
    path = _write(tmp_path / "id", pem)
    path.chmod(0)
    try:
        assert _error({"ENCORD_SSH_KEY_FILE": str(path)}) == (
            f"ENCORD_SSH_KEY_FILE: cannot read key file {path}: Permission denied"
        )
    finally:
        path.chmod(stat.S_IRUSR | stat.S_IWUSR)


def test_key_content_loads() -> None:
    pem, pub = make_ed25519_key()
    auth = auth_from_env({"ENCORD_SSH_KEY": pem})
    assert isinstance(auth, Ed25519SigningAuth)
    assert auth.key_id == pub


def test_key_content_with_literal_backslash_n() -> None:
    pem, pub = make_ed25519_key()
    auth = auth_from_env({"ENCORD_SSH_KEY": pem.strip().replace("\n", "\\n")})
    assert isinstance(auth, Ed25519SigningAuth)
    assert auth.key_id == pub


def test_priority_file_then_content_then_token(tmp_path: Path) -> None:
    file_pem, file_pub = make_ed25519_key()
    content_pem, content_pub = make_ed25519_key()
    path = str(_write(tmp_path / "id", file_pem))
    both = auth_from_env(
        {"ENCORD_SSH_KEY_FILE": path, "ENCORD_SSH_KEY": content_pem, "ENCORD_API_TOKEN": "t"}
    )
    assert isinstance(both, Ed25519SigningAuth)
    assert both.key_id == file_pub
    content = auth_from_env({"ENCORD_SSH_KEY": content_pem, "ENCORD_API_TOKEN": "t"})
    assert isinstance(content, Ed25519SigningAuth)
    assert content.key_id == content_pub
    assert isinstance(auth_from_env({"ENCORD_API_TOKEN": "t"}), BearerAuth)


def test_token_is_bearer() -> None:
    auth = auth_from_env({"ENCORD_API_TOKEN": " tok-abc \n"})
    assert (
        _send(auth, "GET", "https://api.encord.com/v2/public/x").headers["Authorization"] == "Bearer tok-abc"
    )


def test_not_openssh(tmp_path: Path) -> None:
    path = _write(tmp_path / "id", "hello world\n")
    assert _error({"ENCORD_SSH_KEY_FILE": str(path)}) == (
        f"key file {path} is not an OpenSSH private key; Encord needs an Ed25519 key in OpenSSH format "
        "(-----BEGIN OPENSSH PRIVATE KEY-----)"
    )
    assert _error({"ENCORD_SSH_KEY": "hello world"}) == (
        "ENCORD_SSH_KEY is not an OpenSSH private key; Encord needs an Ed25519 key in OpenSSH format "
        "(-----BEGIN OPENSSH PRIVATE KEY-----)"
    )


def test_pem_rsa_key_is_named() -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    ).decode()
    assert _error({"ENCORD_SSH_KEY": pem}) == (
        "ENCORD_SSH_KEY is not an OpenSSH private key (it is a PEM RSA key); Encord needs an Ed25519 key in "
        "OpenSSH format (-----BEGIN OPENSSH PRIVATE KEY-----)"
    )


def test_public_key_instead_of_private() -> None:
    public = (
        VECTOR_KEY.public_key()
        .public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
        .decode()
    )
    assert _error({"ENCORD_SSH_KEY": public}) == (
        "ENCORD_SSH_KEY is not an OpenSSH private key (it is a public key, not a private key); Encord needs "
        "an Ed25519 key in OpenSSH format (-----BEGIN OPENSSH PRIVATE KEY-----)"
    )


def test_truncated_key() -> None:
    pem, _ = make_ed25519_key()
    lines = pem.strip().splitlines()
    broken = "\n".join([*lines[:2], lines[-1]])
    assert _error({"ENCORD_SSH_KEY": broken}) == (
        "ENCORD_SSH_KEY is not a valid OpenSSH private key (corrupt or truncated)"
    )


def test_encrypted_without_password(tmp_path: Path) -> None:
    pem, _ = make_ed25519_key(b"hunter2")
    path = _write(tmp_path / "id", pem)
    assert _error({"ENCORD_SSH_KEY_FILE": str(path)}) == (
        f"key file {path} is encrypted: set ENCORD_SSH_KEY_PASSWORD"
    )
    assert _error({"ENCORD_SSH_KEY_FILE": str(path), "ENCORD_SSH_KEY_PASSWORD": ""}) == (
        f"key file {path} is encrypted: set ENCORD_SSH_KEY_PASSWORD"
    )


def test_encrypted_with_wrong_password(tmp_path: Path) -> None:
    pem, _ = make_ed25519_key(b"hunter2")
    path = _write(tmp_path / "id", pem)
    assert _error({"ENCORD_SSH_KEY_FILE": str(path), "ENCORD_SSH_KEY_PASSWORD": "wrong"}) == (
        f"key file {path}: wrong ENCORD_SSH_KEY_PASSWORD (the key cannot be decrypted)"
    )


def test_encrypted_with_right_password() -> None:
    pem, pub = make_ed25519_key("h\u00fcnter2".encode())
    auth = auth_from_env({"ENCORD_SSH_KEY": pem, "ENCORD_SSH_KEY_PASSWORD": "h\u00fcnter2"})
    assert isinstance(auth, Ed25519SigningAuth)
    assert auth.key_id == pub


def test_password_for_unencrypted_key_is_ignored() -> None:
    pem, pub = make_ed25519_key()
    auth = auth_from_env({"ENCORD_SSH_KEY": pem, "ENCORD_SSH_KEY_PASSWORD": "unused"})
    assert isinstance(auth, Ed25519SigningAuth)
    assert auth.key_id == pub


def test_rsa_key(tmp_path: Path) -> None:
    path = _write(tmp_path / "id_rsa", make_rsa_key())
    assert _error({"ENCORD_SSH_KEY_FILE": str(path)}) == (
        f"key file {path} is an RSA key; Encord needs an Ed25519 key"
    )


def test_ecdsa_key() -> None:
    assert _error({"ENCORD_SSH_KEY": make_ecdsa_key()}) == (
        "ENCORD_SSH_KEY is an ECDSA key; Encord needs an Ed25519 key"
    )


def _secret_lines(pem: str) -> list[str]:
    return [line for line in pem.splitlines() if line and not line.startswith("-----")]


def test_secrets_never_in_messages_reprs_or_logs(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    enc_pem, _ = make_ed25519_key(b"pw-very-secret")
    rsa_pem = make_rsa_key()
    secrets = [
        *_secret_lines(enc_pem),
        *_secret_lines(rsa_pem),
        "pw-very-secret",
        "wrong-pw-secret",
        "tok-secret",
    ]
    cases: list[dict[str, str]] = [
        {"ENCORD_SSH_KEY": enc_pem},
        {"ENCORD_SSH_KEY": enc_pem, "ENCORD_SSH_KEY_PASSWORD": "wrong-pw-secret"},
        {"ENCORD_SSH_KEY": rsa_pem},
        {
            "ENCORD_SSH_KEY_FILE": str(_write(tmp_path / "enc", enc_pem)),
            "ENCORD_SSH_KEY_PASSWORD": "wrong-pw-secret",
        },
        {"ENCORD_SSH_KEY": enc_pem[:200]},
        {"ENCORD_SSH_KEY": "tok-secret"},
    ]
    texts: list[str] = []
    for env in cases:
        with pytest.raises(ProviderAuthError) as info:
            auth_from_env(env)
        exc: BaseException | None = info.value
        while exc is not None:  # the message and every chained cause
            texts += [str(exc), repr(exc)]
            exc = exc.__cause__ or exc.__context__
    good = auth_from_env({"ENCORD_SSH_KEY": enc_pem, "ENCORD_SSH_KEY_PASSWORD": "pw-very-secret"})
    texts += [repr(good), str(good), repr(auth_from_env({"ENCORD_API_TOKEN": "tok-secret"}))]
    texts += [record.getMessage() for record in caplog.records]
    for text in texts:
        for secret in secrets:
            assert secret not in text
