"""Sign-in through an external OpenID Connect provider (Authlib), for deployments that have one.

Off by default (``SHGOV_SECURITY__OIDC__ENABLED``). The provider's ``sub`` (with its issuer) is bound
to an account the first time: an account with that subject is reused; otherwise a citizen account is
created from the ``preferred_username`` and ``name`` claims. Staff accounts are bound by an
administrator setting ``oidc_subject``, never by matching names, so an external identity can never
take over a staff account.

The provider is one of the two ways a person's identity is proven (the other is in-person proofing,
``POST /api/v1/identity/users/{id}/identity``): the 身份证号 in the ``id_number_claim`` (or the enterprise's
统一社会信用代码 in the ``credit_code_claim``) is bound to the account with source ``oidc``. A citizen account
that carries the same 身份证号 already (proven at a window) and has no subject yet is the same person's: the
subject is linked to it. An identity already bound is never replaced by a claim.
"""

from __future__ import annotations

import logging
import secrets
import uuid
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Query
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from shgov.core.deps import get_database, get_settings
from shgov.core.errors import DomainError, Problem
from shgov.core.i18n import N_
from shgov.core.identity.deps import audit_async, safe_next, start_browser_session
from shgov.core.identity.models import User
from shgov.core.identity.service import bind_identity, create_user
from shgov.core.ids import validate_id_number, validate_uscc
from shgov.core.settings import Settings

log = logging.getLogger("shgov.oidc")

NEXT_KEY = "oidc_next"


def _claimed(claims: dict[str, Any], name: str, validator: Callable[[str], str]) -> str | None:
    """A claim's identifier when the provider sent a valid one (an invalid one is logged and ignored)."""
    raw = str(claims.get(name) or "").strip() if name else ""
    if not raw:
        return None
    try:
        return validator(raw)
    except ValueError:
        log.warning("OIDC claim %s is not a valid identifier; not bound", name)
        return None


def account_for_subject(session: Session, subject: str, claims: dict[str, Any], settings: Settings) -> User:
    """The account bound to ``subject``, creating a citizen (or, with only a credit code, an enterprise)
    account on first sign-in, with the identity the provider proved."""
    oidc = settings.security.oidc
    id_number = _claimed(claims, oidc.id_number_claim, validate_id_number)
    credit_code = None if id_number else _claimed(claims, oidc.credit_code_claim, validate_uscc)
    user = session.scalar(select(User).where(User.oidc_subject == subject))
    if user is None and id_number is not None:
        proven = session.scalar(select(User).where(User.id_number == id_number, User.kind == "citizen"))
        if proven is not None and proven.oidc_subject is None:
            proven.oidc_subject = subject
            user = proven
    if user is None:
        wanted = str(claims.get(oidc.username_claim) or "").strip()
        username = wanted if wanted and session.scalar(select(User.id).where(User.username == wanted)) is None else ""
        if not username:
            username = f"oidc-{secrets.token_hex(6)}"
        display = str(claims.get(oidc.name_claim) or username)
        kind = "enterprise" if credit_code else "citizen"
        user = create_user(session, kind=kind, username=username[:80], display_name=display[:120])
        user.oidc_subject = subject
    if user.id_number is None and user.credit_code is None and (id_number or credit_code):
        wanted_kind = "citizen" if id_number else "enterprise"
        if user.kind == wanted_kind:
            try:
                with session.begin_nested():
                    bind_identity(session, user, id_number=id_number, credit_code=credit_code, source="oidc")
            except DomainError as exc:  # bound to another account already: sign in, but bind nothing
                log.warning("OIDC identity not bound to %s: %s", user.username, exc.message)
    session.flush()
    return user


def router(settings: Settings) -> APIRouter:
    """The login and callback routes for the configured provider."""
    # Imported here: only installations that enable OIDC load Authlib.
    from authlib.integrations.starlette_client import OAuth, OAuthError

    oidc = settings.security.oidc
    oauth = OAuth()
    oauth.register(
        "city",
        server_metadata_url=oidc.metadata_url,
        client_id=oidc.client_id,
        client_secret=oidc.client_secret.get_secret_value(),
        client_kwargs={"scope": oidc.scope},
    )
    client = oauth.create_client("city")
    assert client is not None  # noqa: S101 - registered just above
    routes = APIRouter(include_in_schema=False)

    @routes.get("/auth/oidc/login")
    async def oidc_login(request: Request, next_path: Annotated[str, Query(alias="next")] = "/") -> Response:
        request.session[NEXT_KEY] = safe_next(next_path)
        redirect_uri = str(request.url_for("oidc_callback"))
        response: Response = await client.authorize_redirect(request, redirect_uri)
        return response

    @routes.get("/auth/oidc/callback", name="oidc_callback")
    async def oidc_callback(request: Request) -> Response:
        try:
            token = await client.authorize_access_token(request)
        except OAuthError as exc:
            log.warning("OIDC sign-in failed: %s", exc.error)
            await audit_async(request, None, "auth.login.oidc", outcome="denied", details={"error": exc.error})
            raise Problem("unauthenticated", detail=N_("The identity provider did not confirm the sign-in.")) from exc
        claims: dict[str, Any] = dict(token.get("userinfo") or {})
        issuer, subject = str(claims.get("iss", "")), str(claims.get("sub", ""))
        if not subject:
            raise Problem("unauthenticated", detail=N_("The identity provider sent no subject."))
        current = get_settings(request)

        def account() -> tuple[uuid.UUID, str]:
            # Writes (the account on first sign-in): in a worker thread, never on the event loop.
            with get_database(request).session() as session:
                user = account_for_subject(session, f"{issuer}|{subject}", claims, current)
                if not user.is_active:
                    raise Problem("forbidden", detail=N_("This account is disabled."))
                return user.id, user.username

        user_id, username = await run_in_threadpool(account)
        await audit_async(
            request, None, "auth.login.oidc", actor_name=username, object_type="user", object_id=str(user_id)
        )
        next_path = request.session.pop(NEXT_KEY, "/")
        return await run_in_threadpool(start_browser_session, request, user_id, next_path)

    return routes
