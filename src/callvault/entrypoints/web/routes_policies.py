"""Recording policies page (R19): why each care unit records, on what basis, how long.

The same service as ``/api/v1/policies`` (``policies``): set (create or
replace), retire and list, each audited.  Ingest is refused for a unit and
retention class without an active policy.
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from callvault.core.access import Principal
from callvault.core.errors import InvalidInput
from callvault.core.retention import POLICY_CLASSES
from callvault.entrypoints.web.common import Form, WebRoute, actor, render, vault, viewer
from callvault.entrypoints.web.routes_admin import FAILURES, failure
from callvault.services import policies

router = APIRouter(route_class=WebRoute, include_in_schema=False)


@router.get("/admin/policies")
def policies_page(request: Request) -> Response:
    return _policies(request, viewer(request))


@router.post("/admin/policies")
def set_policy(request: Request, form: Form) -> Response:
    user = actor(request, form)
    try:
        policy = policies.set_policy(
            vault(request),
            user,
            care_unit=form.get("care_unit", "").strip(),
            retention_class=form.get("retention_class", ""),
            purpose=form.get("purpose", ""),
            legal_basis=form.get("legal_basis", ""),
            keep_days=_days(form.get("keep_days", "")),
        )
    except FAILURES as exc:
        return _policies(request, user, form=form, error=failure(exc), status=exc.http_status)
    notice = ("admin.policies.saved", f"{policy.care_unit} / {policy.retention_class}")
    return _policies(request, user, notice=notice)


@router.post("/admin/policies/retire")
def retire_policy(request: Request, form: Form) -> Response:
    user = actor(request, form)
    try:
        policy = policies.retire_policy(
            vault(request),
            user,
            care_unit=form.get("care_unit", "").strip(),
            retention_class=form.get("retention_class", ""),
        )
    except FAILURES as exc:
        return _policies(request, user, error=failure(exc), status=exc.http_status)
    notice = ("admin.policies.retired", f"{policy.care_unit} / {policy.retention_class}")
    return _policies(request, user, notice=notice)


def _days(text: str) -> int | None:
    """Days as typed; empty means the class's default."""
    text = text.strip().replace(" ", "").replace("\u00a0", "")
    if not text:
        return None
    if not (text.isascii() and text.isdigit() and len(text) <= 6):
        raise InvalidInput("days to keep is a whole number")
    return int(text)


def _policies(
    request: Request,
    user: Principal,
    *,
    notice: tuple[str, str] | None = None,
    error: tuple[str, str] | None = None,
    form: dict[str, str] | None = None,
    status: int = 200,
) -> Response:
    found = policies.list_policies(vault(request), user)
    rows = sorted(found, key=lambda p: (not p.active, p.care_unit, p.retention_class))
    return render(
        request,
        "admin_policies.html",
        user=user,
        policies=rows,
        classes=POLICY_CLASSES,
        notice=notice,
        error=error,
        form=form or {},
        status=status,
    )
