"""API keys: ``rpk_<prefix>_<secret>``. Only the prefix and a sha256 of the whole key are stored."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

KEY_SCHEME = "rpk"
PREFIX_LEN = 8


@dataclass(frozen=True)
class NewKey:
    prefix: str
    plaintext: str
    key_hash: str


def generate_key() -> NewKey:
    """A fresh key with 256 random bits; the plaintext is shown once and never stored."""
    prefix = secrets.token_hex(PREFIX_LEN // 2)
    plaintext = f"{KEY_SCHEME}_{prefix}_{secrets.token_urlsafe(32)}"
    return NewKey(prefix=prefix, plaintext=plaintext, key_hash=hash_key(plaintext))


def hash_key(plaintext: str) -> str:
    """sha256 hex of the key."""
    return hashlib.sha256(plaintext.encode()).hexdigest()


def split_prefix(plaintext: str) -> str | None:
    """The lookup prefix of a well-formed key, or ``None``."""
    parts = plaintext.split("_", 2)
    if len(parts) != 3 or parts[0] != KEY_SCHEME or len(parts[1]) != PREFIX_LEN:
        return None
    return parts[1]


def key_matches(plaintext: str, key_hash: str) -> bool:
    """Constant-time comparison of a presented key with a stored hash."""
    return hmac.compare_digest(hash_key(plaintext), key_hash)
