"""Credentials at rest (issue 12 item 1): a key file generated once, a real KDF for passphrases, and
credentials stored by the old single-SHA-256 derivation still readable (and migrated on read)."""

from __future__ import annotations

import base64
import hashlib
import logging
import stat
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from redis.asyncio import Redis

from position_order_service.exchanges.base import Credentials
from position_order_service.services.credentials import (
    CredentialStore,
    credential_cipher,
    load_or_create_key_file,
)
from position_order_service.store.keys import Keys

CREDS = Credentials("api-key-1", "secret-1", "pass-1")


def test_key_file_is_generated_once_with_mode_0600_and_reused(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    path = tmp_path / "var" / "credentials.key"
    key, created = load_or_create_key_file(path)
    assert created and path.exists()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    Fernet(key.encode())  # a valid Fernet key
    again, created_again = load_or_create_key_file(path)
    assert again == key and not created_again
    cipher = credential_cipher("", data_dir=tmp_path / "var")
    assert cipher.decrypt(credential_cipher("", data_dir=tmp_path / "var").encrypt(b"x"))[0] == b"x"
    assert str(path) in caplog.text and key not in caplog.text


async def _store(redis: Redis, prefix: str, cipher: object) -> CredentialStore:
    return CredentialStore(redis, Keys(prefix=prefix), cipher)  # type: ignore[arg-type]


async def test_a_passphrase_goes_through_scrypt_with_a_salt_beside_the_ciphertext(
    redis_client: Redis, key_prefix: str
) -> None:
    store = await _store(redis_client, key_prefix, credential_cipher("correct horse battery staple"))
    await store.put("u1", "okx", CREDS)
    raw = await redis_client.get(Keys(prefix=key_prefix).credentials("u1", "okx"))
    assert raw is not None and raw.startswith(b"scrypt$")
    legacy_key = base64.urlsafe_b64encode(hashlib.sha256(b"correct horse battery staple").digest())
    with pytest.raises(Exception):  # noqa: B017 (not the old derivation)
        Fernet(legacy_key).decrypt(raw.split(b"$")[-1])
    # another process (another salt for its own writes) reads it with the same passphrase
    other = await _store(redis_client, key_prefix, credential_cipher("correct horse battery staple"))
    assert await other.get("u1", "okx") == CREDS


async def test_credentials_stored_by_the_old_sha256_derivation_are_read_and_migrated(
    redis_client: Redis, key_prefix: str
) -> None:
    passphrase = "an-old-deployment-passphrase"
    legacy = Fernet(base64.urlsafe_b64encode(hashlib.sha256(passphrase.encode()).digest()))
    key = Keys(prefix=key_prefix).credentials("u1", "okx")
    await redis_client.set(
        key, legacy.encrypt(b'{"api_key":"api-key-1","secret":"secret-1","passphrase":"pass-1"}')
    )
    store = await _store(redis_client, key_prefix, credential_cipher(passphrase))
    assert await store.get("u1", "okx") == CREDS
    migrated = await redis_client.get(key)
    assert migrated is not None and migrated.startswith(b"scrypt$")
    assert await store.get("u1", "okx") == CREDS


async def test_a_fernet_key_is_used_as_is(redis_client: Redis, key_prefix: str) -> None:
    fernet_key = Fernet.generate_key()
    store = await _store(redis_client, key_prefix, credential_cipher(fernet_key.decode()))
    await store.put("u1", "okx", CREDS)
    raw = await redis_client.get(Keys(prefix=key_prefix).credentials("u1", "okx"))
    assert raw is not None
    assert Fernet(fernet_key).decrypt(raw).startswith(b"{")
