"""Administration pages: users, care units and key status.

The same services as ``/api/v1/users`` and ``/api/v1/care-units``
(``accounts``), which decide who may (administrators and the operator).
User names travel in POST bodies, never in addresses.  A new account's or a
reset account's one-time enrolment link is shown in the answer to the POST
that made it, once: the vault keeps only its hash.  Administrators manage
people and keys' bookkeeping; they never see a recording or a play control.
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from callvault.core.access import Principal, Role
from callvault.core.errors import AlreadyExists, CallvaultError, InvalidInput, NotFound
from callvault.core.retention import POLICY_CLASSES
from callvault.entrypoints.web import nav
from callvault.entrypoints.web.common import Form, WebRoute, actor, render, vault, viewer
from callvault.services import accounts, keyring

router = APIRouter(route_class=WebRoute, include_in_schema=False)

_ADMINS = frozenset({Role.ADMINISTRATOR})
nav.register(nav.NavItem("/admin/users", "nav.users", _ADMINS))
nav.register(nav.NavItem("/admin/units", "nav.units", _ADMINS))
nav.register(nav.NavItem("/admin/policies", "nav.policies", _ADMINS))
nav.register(nav.NavItem("/admin/tokens", "nav.tokens", _ADMINS))
nav.register(nav.NavItem("/admin/keys", "nav.keys", _ADMINS))
nav.register(nav.NavItem("/admin/jobs", "nav.jobs", _ADMINS))

# Roles a person may be given here (the recorder role belongs to API tokens).
PERSON_ROLES = (
    Role.CALL_HANDLER.value,
    Role.SUPERVISOR.value,
    Role.LOG_REVIEWER.value,
    Role.PRIVACY_OFFICER.value,
    Role.ADMINISTRATOR.value,
)
# What a refused form shows: a translated heading, the service's own wording after it.
FAILURES: tuple[type[CallvaultError], ...] = (InvalidInput, AlreadyExists, NotFound)


def failure(exc: CallvaultError) -> tuple[str, str]:
    """The message key and detail shown for a refused form."""
    if isinstance(exc, AlreadyExists):
        return ("admin.error.exists", "")
    if isinstance(exc, NotFound):
        return ("admin.error.not_found", "")
    return ("admin.error.input", exc.message)


def units_of(text: str) -> list[str]:
    """Care units typed as a list (commas, semicolons or spaces between)."""
    return [u for u in text.replace(";", ",").replace(" ", ",").split(",") if u]


# --- users --------------------------------------------------------------------------


@router.get("/admin/users")
def users_page(request: Request) -> Response:
    return _users(request, viewer(request))


@router.post("/admin/users")
def create_user(request: Request, form: Form) -> Response:
    user = actor(request, form)
    try:
        made = accounts.create_user(
            vault(request),
            user,
            form.get("username", ""),
            form.get("role", ""),
            units_of(form.get("care_units", "")),
        )
    except FAILURES as exc:
        return _users(request, user, form=form, error=failure(exc), status=exc.http_status)
    return _users(request, user, enrolment=(made, "admin.users.created"))


@router.post("/admin/users/reset")
def reset_user(request: Request, form: Form) -> Response:
    """A lost phone or forgotten password: factors cleared, sessions ended, a new link."""
    user = actor(request, form)
    try:
        made = accounts.reset_user(vault(request), user, form.get("username", ""))
    except FAILURES as exc:
        return _users(request, user, error=failure(exc), status=exc.http_status)
    return _users(request, user, enrolment=(made, "admin.users.reset_done"))


@router.post("/admin/users/disable")
def disable_user(request: Request, form: Form) -> Response:
    user = actor(request, form)
    name = form.get("username", "")
    try:
        accounts.disable_user(vault(request), user, name)
    except FAILURES as exc:
        return _users(request, user, error=failure(exc), status=exc.http_status)
    return _users(request, user, notice=("admin.users.disabled", accounts.validate_username(name)))


def _users(
    request: Request,
    user: Principal,
    *,
    enrolment: tuple[accounts.Enrolment, str] | None = None,
    notice: tuple[str, str] | None = None,
    error: tuple[str, str] | None = None,
    form: dict[str, str] | None = None,
    status: int = 200,
) -> Response:
    people = accounts.list_users(vault(request), user)
    link = None
    if enrolment is not None:
        made, heading = enrolment
        link = (heading, made.username, made.link(str(request.base_url)), made.expires_at)
    return render(
        request,
        "admin_users.html",
        user=user,
        people=people,
        roles=PERSON_ROLES,
        link=link,
        notice=notice,
        error=error,
        form=form or {},
        status=status,
    )


# --- care units -------------------------------------------------------------------------


@router.get("/admin/units")
def units_page(request: Request) -> Response:
    return _units(request, viewer(request))


@router.post("/admin/units")
def create_unit(request: Request, form: Form) -> Response:
    user = actor(request, form)
    try:
        row = accounts.create_care_unit(
            vault(request), user, form.get("unit_id", "").strip(), form.get("name", "")
        )
    except FAILURES as exc:
        return _units(request, user, form=form, error=failure(exc), status=exc.http_status)
    return _units(request, user, notice=("admin.units.created", row.id))


def _units(
    request: Request,
    user: Principal,
    *,
    notice: tuple[str, str] | None = None,
    error: tuple[str, str] | None = None,
    form: dict[str, str] | None = None,
    status: int = 200,
) -> Response:
    units = accounts.list_care_units(vault(request), user)
    return render(
        request,
        "admin_units.html",
        user=user,
        units=units,
        notice=notice,
        error=error,
        form=form or {},
        status=status,
    )


# --- keys -------------------------------------------------------------------------------


@router.get("/admin/keys")
def keys_page(request: Request) -> Response:
    """Key versions and how many recordings each bucket key holds (no key material)."""
    user = viewer(request)
    found = keyring.status(vault(request), user)
    total = sum(bucket[4] for bucket in found.buckets)
    return render(
        request, "admin_keys.html", user=user, keys=found, total=total, classes=POLICY_CLASSES
    )
