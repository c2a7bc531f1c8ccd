"""Concept names: 1-64 letters, digits, spaces and ``_-.'``; stored without angle brackets."""

from __future__ import annotations

import re
import unicodedata

NAME_MAX = 64
_ALLOWED_CHARS = re.compile(r"^[\w .'\-]+$")
_LETTER_OR_DIGIT = re.compile(r"[^\W_]")


class InvalidName(ValueError):
    pass


def normalize_name(raw: str) -> str:
    """``<bo>`` -> ``bo``: strip one pair of angle brackets and outer white space, NFC, one
    space between words. Raises :class:`InvalidName` with a message a caller can act on."""
    name = unicodedata.normalize("NFC", raw).strip()
    if name.startswith("<") and name.endswith(">"):
        name = name[1:-1].strip()
    name = " ".join(name.split())
    if not name:
        raise InvalidName("The concept name is empty; use 1-64 letters, digits or spaces.")
    if len(name) > NAME_MAX:
        raise InvalidName(f"The concept name has {len(name)} characters; the limit is {NAME_MAX}.")
    if not _ALLOWED_CHARS.fullmatch(name) or not _LETTER_OR_DIGIT.search(name):
        raise InvalidName(
            f"The concept name {name!r} needs a letter or digit and may only contain letters, "
            "digits, spaces and _ - . ' "
            "(angle brackets are added by the service)."
        )
    return name


def name_key(name: str) -> str:
    """The case-insensitive identity of a (normalised) name."""
    return name.casefold()
