"""Users and API keys (CLI and admin API share these)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from app.services.errors import Conflict, not_found
from store.db import transaction
from store.models import ApiKey, User
from store.repositories import UserRepository
from store.security import generate_key, key_matches, split_prefix


@dataclass(frozen=True)
class IssuedKey:
    user: User
    prefix: str
    plaintext: str


class UserService:
    def __init__(
        self, sessions: sessionmaker[Session], *, max_active_keys: int | None = None
    ) -> None:
        self.sessions = sessions
        self.max_active_keys = max_active_keys

    def create_user(self, name: str) -> IssuedKey:
        """Create a user with a first API key (409 when the name is taken)."""
        try:
            with transaction(self.sessions) as session:
                repo = UserRepository(session)
                if repo.by_name(name) is not None:
                    raise _taken(name)
                user = repo.create(name)
                return self._issue(repo, user)
        except IntegrityError as exc:
            raise _taken(name) from exc

    def create_key(self, user_name: str) -> IssuedKey:
        """One more key for an existing user."""
        with transaction(self.sessions) as session:
            repo = UserRepository(session)
            user = repo.by_name(user_name)
            if user is None:
                raise not_found(f"User {user_name!r}")
            limit = self.max_active_keys
            if limit is not None and repo.active_key_count(user) >= limit:
                raise Conflict(
                    "quota-exceeded",
                    f"{user.name!r} already has {limit} active API keys, the limit; revoke one "
                    "first.",
                )
            return self._issue(repo, user)

    def revoke_key(self, prefix: str) -> ApiKey:
        """Revoke the key with this prefix (idempotent)."""
        with transaction(self.sessions) as session:
            repo = UserRepository(session)
            key = repo.key_by_prefix(prefix)
            if key is None:
                raise not_found(f"API key {prefix!r}")
            repo.revoke(key)
            return key

    def list_users(self) -> Sequence[User]:
        with self.sessions() as session:
            return UserRepository(session).list()

    def keys_of(self, user_name: str) -> Sequence[ApiKey]:
        with self.sessions() as session:
            repo = UserRepository(session)
            user = repo.by_name(user_name)
            if user is None:
                raise not_found(f"User {user_name!r}")
            return repo.keys_of(user)

    def authenticate(self, plaintext: str) -> User | None:
        """The user owning an active key, or ``None``."""
        prefix = split_prefix(plaintext)
        if prefix is None:
            return None
        with self.sessions() as session:
            key = UserRepository(session).active_key(prefix)
            if key is None or not key_matches(plaintext, key.key_hash):
                return None
            return key.user

    @staticmethod
    def _issue(repo: UserRepository, user: User) -> IssuedKey:
        new = generate_key()
        repo.add_key(user, new.prefix, new.key_hash)
        return IssuedKey(user=user, prefix=new.prefix, plaintext=new.plaintext)


def _taken(name: str) -> Conflict:
    return Conflict("user-exists", f"A user named {name!r} exists; pick another name.")
