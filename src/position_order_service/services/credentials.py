"""Exchange credentials of users, encrypted at rest (Fernet), never returned by the API, logged or put in an
error. The seed's plaintext hash `user:{id}:api:keys` (api_key, api_secret, passphrase) is read only when a
setting allows it.

The key (CREDENTIALS_KEY):
- a Fernet key (`Fernet.generate_key()`) is used as is: a stored value is a Fernet token;
- any other text is a passphrase: it goes through scrypt with a random salt, and a stored value is
  `scrypt$<salt>$<token>` (the salt beside the ciphertext). Values written by the old derivation (one SHA-256
  of the passphrase) are still read, and rewritten in the new form on read;
- empty: a key generated once into `DATA_DIR/credentials.key` (mode 0600) and reused from then on.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import os
from pathlib import Path
from typing import Protocol

import orjson
from cachetools import LRUCache
from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt
from redis.asyncio import Redis

from ..exchanges.base import Credentials
from ..store.credentials import CredentialRepository
from ..store.keys import Keys

log = logging.getLogger(__name__)

KEY_FILE_NAME = "credentials.key"
SCRYPT_PREFIX = b"scrypt$"
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1  # ~16 MiB, ~50 ms per derivation; cached per salt


class CredentialsUnavailable(Exception):
    """No usable credentials for a user on an exchange (message names neither key nor secret)."""


class CredentialCipher(Protocol):
    def encrypt(self, data: bytes) -> bytes: ...

    def decrypt(self, blob: bytes) -> tuple[bytes, bool]:
        """(plaintext, True when the blob is in an old form and should be written again). InvalidToken."""
        ...


class FernetCipher:
    """A Fernet key used as is."""

    def __init__(self, fernet: Fernet) -> None:
        self.fernet = fernet

    def encrypt(self, data: bytes) -> bytes:
        return self.fernet.encrypt(data)

    def decrypt(self, blob: bytes) -> tuple[bytes, bool]:
        return self.fernet.decrypt(blob), False


def _legacy_fernet(passphrase: str) -> Fernet:
    return Fernet(base64.urlsafe_b64encode(hashlib.sha256(passphrase.encode()).digest()))


class PassphraseCipher:
    """A passphrase through scrypt. This process writes with one random salt (derived once); reading derives
    the key of each salt it meets once (an LRU of derived keys)."""

    def __init__(self, passphrase: str) -> None:
        self._passphrase = passphrase.encode()
        self._keys: LRUCache[bytes, Fernet] = LRUCache(maxsize=64)
        self._salt = os.urandom(16)
        self._legacy = _legacy_fernet(passphrase)

    def __repr__(self) -> str:
        return "PassphraseCipher(***)"

    def _fernet(self, salt: bytes) -> Fernet:
        fernet = self._keys.get(salt)
        if fernet is None:
            kdf = Scrypt(salt=salt, length=32, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P)
            fernet = Fernet(base64.urlsafe_b64encode(kdf.derive(self._passphrase)))
            self._keys[salt] = fernet
        return fernet

    def encrypt(self, data: bytes) -> bytes:
        salt_b64 = base64.urlsafe_b64encode(self._salt)
        return SCRYPT_PREFIX + salt_b64 + b"$" + self._fernet(self._salt).encrypt(data)

    def decrypt(self, blob: bytes) -> tuple[bytes, bool]:
        if blob.startswith(SCRYPT_PREFIX):
            salt_b64, sep, token = blob[len(SCRYPT_PREFIX) :].partition(b"$")
            if not sep:
                raise InvalidToken
            try:
                salt = base64.urlsafe_b64decode(salt_b64)
            except ValueError:
                raise InvalidToken from None
            return self._fernet(salt).decrypt(token), False
        return self._legacy.decrypt(blob), True  # the old single-SHA-256 derivation


def load_or_create_key_file(path: Path) -> tuple[str, bool]:
    """The Fernet key in `path`, generated (mode 0600) when the file does not exist. (key, created)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        key = path.read_text().strip()
        Fernet(key.encode())  # a damaged file fails here, loudly, rather than encrypting with garbage
        if path.stat().st_mode & 0o077:
            log.warning("the credentials key file %s can be read by others: chmod 600 it", path)
        return key, False
    key = Fernet.generate_key().decode()
    with os.fdopen(fd, "w") as f:
        f.write(key + "\n")
    return key, True


def credential_cipher(setting: str, data_dir: Path | None = None) -> CredentialCipher:
    """The cipher for CREDENTIALS_KEY (see the module docstring); empty = the key file in `data_dir`."""
    if setting:
        try:
            return FernetCipher(Fernet(setting.encode()))
        except ValueError:
            return PassphraseCipher(setting)
    if data_dir is None:
        raise ValueError("CREDENTIALS_KEY is empty and there is no data directory for a key file")
    path = data_dir / KEY_FILE_NAME
    key, created = load_or_create_key_file(path)
    log.info(
        "CREDENTIALS_KEY is not set: %s the credentials key file %s (keep it with the data; every instance "
        "sharing this Redis needs the same key)",
        "generated" if created else "using",
        path,
    )
    return FernetCipher(Fernet(key.encode()))


def fernet_from_setting(secret: str) -> Fernet:
    """Deprecated (the single-SHA-256 derivation): use `credential_cipher`. Kept for callers not moved yet."""
    try:
        return Fernet(secret.encode())
    except ValueError:
        return _legacy_fernet(secret)


class CredentialStore:
    def __init__(
        self,
        redis: Redis,
        keys: Keys,
        cipher: CredentialCipher | Fernet,
        allow_legacy_plaintext: bool = False,
    ) -> None:
        self.repository = CredentialRepository(redis, keys)
        self.cipher: CredentialCipher = FernetCipher(cipher) if isinstance(cipher, Fernet) else cipher
        self.allow_legacy_plaintext = allow_legacy_plaintext
        self._static: dict[tuple[str, str], Credentials] = {}

    def register_static(self, user_id: str, exchange: str, credentials: Credentials) -> None:
        """Credentials known at start (the demo user of the embedded simulator); never stored."""
        self._static[(user_id, exchange)] = credentials

    @staticmethod
    def _blob(credentials: Credentials) -> bytes:
        return orjson.dumps(
            {
                "api_key": credentials.api_key,
                "secret": credentials.secret,
                "passphrase": credentials.passphrase,
            }
        )

    async def put(self, user_id: str, exchange: str, credentials: Credentials) -> None:
        token = await asyncio.to_thread(self.cipher.encrypt, self._blob(credentials))  # scrypt: off the loop
        await self.repository.put(user_id, exchange, token)

    async def delete(self, user_id: str, exchange: str) -> bool:
        return await self.repository.delete(user_id, exchange)

    async def has(self, user_id: str, exchange: str) -> bool:
        if (user_id, exchange) in self._static:
            return True
        return await self.repository.exists(user_id, exchange)

    async def get(self, user_id: str, exchange: str) -> Credentials:
        static = self._static.get((user_id, exchange))
        if static is not None:
            return static
        token = await self.repository.get(user_id, exchange)
        if token is not None:
            try:
                plain, old_form = await asyncio.to_thread(self.cipher.decrypt, token)
            except InvalidToken:
                raise CredentialsUnavailable(
                    f"stored credentials of user {user_id} on {exchange} cannot be decrypted with CREDENTIALS_KEY"
                ) from None
            data = orjson.loads(plain)
            credentials = Credentials(data["api_key"], data["secret"], data.get("passphrase") or "")
            if old_form:
                await self._migrate(token, credentials, user_id, exchange)
            return credentials
        if self.allow_legacy_plaintext:
            fields = await self.repository.legacy_plaintext(user_id)
            if fields.get("api_key") and (fields.get("api_secret") or fields.get("secret")):
                return Credentials(
                    fields["api_key"],
                    fields.get("api_secret") or fields["secret"],
                    fields.get("passphrase", ""),
                )
        raise CredentialsUnavailable(f"no credentials for user {user_id} on {exchange}")

    async def undecryptable(self, accounts: list[tuple[str, str]]) -> list[tuple[str, str]]:
        """The accounts whose stored credentials this process' CREDENTIALS_KEY cannot decrypt (a worker
        started with another deployment's key says so instead of silently skipping them)."""
        out = []
        for user_id, exchange in accounts:
            if (user_id, exchange) in self._static:
                continue
            token = await self.repository.get(user_id, exchange)
            if token is None:
                continue
            try:
                await asyncio.to_thread(self.cipher.decrypt, token)
            except InvalidToken:
                out.append((user_id, exchange))
        return out

    async def _migrate(self, old: bytes, credentials: Credentials, user_id: str, exchange: str) -> None:
        """Rewrite a value of the old form in the new one, unless someone replaced it meanwhile."""
        new = await asyncio.to_thread(self.cipher.encrypt, self._blob(credentials))
        if not await self.repository.replace(user_id, exchange, old, new):
            return
        log.info(
            "credentials of user %s on %s re-encrypted with the scrypt-derived key",
            user_id,
            exchange,
            extra={"user_id": user_id, "exchange": exchange},
        )
