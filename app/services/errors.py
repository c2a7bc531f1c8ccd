"""What a use case says when it refuses or cannot finish, without HTTP.

Services, the quotas and the upload intake raise these; :mod:`app.http.problems` is the one
place that turns them into RFC 9457 problem documents (status, type, title, headers), and the
command line prints their ``detail``. ``kind`` is the stable code of the problem (the end of
its ``type``).
"""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    """Base of the domain errors: a stable ``kind``, a ``detail`` that says what to do.

    ``retry_after_s``: when trying again may succeed. ``errors``: the fields at fault.
    """

    def __init__(
        self,
        kind: str,
        detail: str,
        *,
        retry_after_s: int | None = None,
        errors: list[dict[str, Any]] | None = None,
    ) -> None:
        super().__init__(detail)
        self.kind = kind
        self.detail = detail
        self.retry_after_s = retry_after_s
        self.errors = errors


class NotFound(DomainError):
    """The object does not exist, or belongs to another user."""


class Conflict(DomainError):
    """The request contradicts what is stored (a taken name, a quota, the last image)."""


class InvalidInput(DomainError):
    """The request is well-formed but its content cannot be used."""


class UnsupportedMedia(DomainError):
    """A file is of a kind that is not accepted."""


class TooLarge(DomainError):
    """A file or a request is larger than allowed."""


class TooMany(DomainError):
    """The caller is over a rate or concurrency limit; ``retry_after_s`` says when to retry."""


class Unavailable(DomainError):
    """A dependency (store, model, disk) cannot serve now; nothing was changed."""


class NotSupported(DomainError):
    """This deployment cannot do what was asked."""


class UpstreamRefused(DomainError):
    """A dependency refused a request we made (a bug or a misconfiguration)."""


class UpstreamTimeout(DomainError):
    """A dependency did not answer in time."""


class Failed(DomainError):
    """An unexpected failure (a bug)."""


def not_found(what: str) -> NotFound:
    """The error for something that does not exist or belongs to another user."""
    return NotFound("not-found", f"{what} does not exist (or is not yours).")
