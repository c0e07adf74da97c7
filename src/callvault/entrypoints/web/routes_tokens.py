"""API tokens page: create (the secret shown once), list, revoke (R11).

The same service as ``/api/v1/tokens`` (``tokens``): administrators and the
operator only.  The token's secret exists in the answer to the POST that made
it and nowhere else; the vault keeps its hash.
"""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Request, Response

from callvault.core.access import Principal
from callvault.core.errors import InvalidInput
from callvault.entrypoints.web.common import Form, WebRoute, actor, render, vault, viewer
from callvault.entrypoints.web.routes_admin import FAILURES, failure
from callvault.services import tokens

router = APIRouter(route_class=WebRoute, include_in_schema=False)


@router.get("/admin/tokens")
def tokens_page(request: Request) -> Response:
    return _tokens(request, viewer(request))


@router.post("/admin/tokens")
def create_token(request: Request, form: Form) -> Response:
    user = actor(request, form)
    try:
        made = tokens.create(
            vault(request), user, form.get("name", ""), form.get("care_unit", "").strip()
        )
    except FAILURES as exc:
        return _tokens(request, user, form=form, error=failure(exc), status=exc.http_status)
    return _tokens(request, user, made=made)


@router.post("/admin/tokens/revoke")
def revoke_token(request: Request, form: Form) -> Response:
    user = actor(request, form)
    try:
        token_id = _token_id(form.get("token_id", ""))
        revoked = tokens.revoke(vault(request), user, token_id)
    except FAILURES as exc:
        return _tokens(request, user, error=failure(exc), status=exc.http_status)
    return _tokens(request, user, notice=("admin.tokens.revoked", revoked.name))


def _token_id(text: str) -> uuid.UUID:
    try:
        return uuid.UUID(text.strip())
    except ValueError:
        raise InvalidInput("not a token id") from None


def _tokens(
    request: Request,
    user: Principal,
    *,
    made: tokens.NewToken | None = None,
    notice: tuple[str, str] | None = None,
    error: tuple[str, str] | None = None,
    form: dict[str, str] | None = None,
    status: int = 200,
) -> Response:
    found = tokens.list_tokens(vault(request), user)
    return render(
        request,
        "admin_tokens.html",
        user=user,
        tokens=found,
        made=made,
        notice=notice,
        error=error,
        form=form or {},
        status=status,
    )
