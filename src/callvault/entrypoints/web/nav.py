"""The navigation bar: which pages each role sees.

A page that should appear in the bar registers a :class:`NavItem`; the bar
shows the items whose ``roles`` hold the signed-in person's role, in order.
The bar only guides: every page still asks its service, which decides.
"""

from __future__ import annotations

from dataclasses import dataclass

from callvault.core.access import Role


@dataclass(frozen=True)
class NavItem:
    path: str
    label: str  # a message key
    roles: frozenset[Role]


_LISTENERS = frozenset({Role.CALL_HANDLER, Role.SUPERVISOR})

NAV: list[NavItem] = [
    NavItem("/search", "nav.search", _LISTENERS | {Role.PRIVACY_OFFICER}),
    NavItem("/emergency", "nav.emergency", _LISTENERS),
]


def register(item: NavItem) -> None:
    """Add a page to the bar (once; a second registration of a path replaces the first)."""
    NAV[:] = [existing for existing in NAV if existing.path != item.path]
    NAV.append(item)


def items_for(role: str) -> list[NavItem]:
    return [item for item in NAV if role in item.roles]


def home_for(role: str) -> str:
    """Where a person lands after sign-in: their first page, else the start page."""
    items = items_for(role)
    return items[0].path if items else "/start"
