"""Who is acting.  The full need-based access decision arrives with the API."""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass, field

from callvault.core.errors import InvalidInput

_NAME = re.compile(r"\A[A-Za-z0-9_][A-Za-z0-9._@-]{0,63}\Z")


def new_session_id() -> str:
    return secrets.token_hex(8)


@dataclass(frozen=True)
class Principal:
    """A person or system acting on the vault.

    ``name`` is a login or OS user name; ``care_unit`` is None for vault-wide
    operators.  Every audit entry carries these fields.
    """

    name: str
    role: str
    care_unit: str | None = None
    session: str = field(default_factory=new_session_id)

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise InvalidInput("principal name must be a plain user name")


OPERATOR = "operator"
