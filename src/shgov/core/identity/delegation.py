"""Nobody grants more than they hold: the one check behind giving roles, defining roles, granting another
department access, creating system clients and issuing credentials (tokens, API keys) — for the API, the
pages and the command line alike.

To hand on a set of actions within a scope, the caller must hold the managing action (``identity.role.assign``,
``identity.grant.manage``, ``identity.client.manage``, ``identity.role.manage``) over the whole scope **and**
every one of the actions over the whole scope. ``*`` (every action, including those of modules added later)
can be handed on only by someone whose own role lists ``*`` over that scope. Giving oneself a role is no
different: it is allowed only when it adds nothing one does not already hold.

A credential (a bearer token, an open-data API key, a system client's secret) stands for one account and
carries at most the actions given to it within a scope: ``require_credential`` applies the same rule, with no
managing action when one issues a credential for oneself (it can carry nothing one does not hold) and the
managing action ``via`` when it is for another account (a new system client).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable

from shgov.core.errors import Problem
from shgov.core.i18n import N_
from shgov.core.identity.permissions import Principal, Scope, is_by_name_only

ALL = "*"
EVERYWHERE = Scope(None, None)


def missing_for(
    principal: Principal, actions: Iterable[str], scope: Scope, *, via: str | None, takeover: bool = False
) -> list[str]:
    """What ``principal`` lacks to hand ``actions`` on within ``scope`` using the managing action ``via``
    (None: no managing action, for a credential of one's own; an empty list: allowed).

    An action given by name only (``identity.user.proof``) is not held through "*", but one who holds "*" may
    still give it to others — never to themselves (``require_not_self``), and never on a credential whose
    secret they would hold (``takeover``: an API key, a system client)."""
    missing = [] if via is None or principal.allows_scope(via, scope) else [via]
    for action in sorted(set(actions)):
        if action == ALL:
            if not principal.holds_wildcard(scope):
                missing.append(ALL)
        elif principal.allows_scope(action, scope):
            continue
        elif not (is_by_name_only(action) and not takeover and principal.holds_wildcard(scope)):
            missing.append(action)
    return missing


def require_not_self(principal: Principal, holder: uuid.UUID, actions: Iterable[str]) -> None:
    """403 when ``principal`` would give themselves an action given by name only."""
    named = sorted(a for a in set(actions) if is_by_name_only(a) and not principal.has_action(a))
    if holder == principal.user_id and named:
        raise Problem(
            "forbidden",
            detail=N_("Nobody gives themselves an action given by name only: {actions}"),
            params={"actions": ", ".join(named)},
            extra={"missing_actions": named},
        )


def may_delegate(principal: Principal, actions: Iterable[str], scope: Scope, *, via: str | None) -> bool:
    """True when ``principal`` may hand ``actions`` on within ``scope`` (see ``missing_for``)."""
    return not missing_for(principal, actions, scope, via=via)


def require_delegation(
    principal: Principal, actions: Iterable[str], scope: Scope, *, via: str | None, takeover: bool = False
) -> None:
    """403 naming what is missing unless ``principal`` may hand ``actions`` on within ``scope``."""
    missing = missing_for(principal, actions, scope, via=via, takeover=takeover)
    if missing:
        raise Problem(
            "forbidden",
            detail=N_("You may hand on only what you hold yourself within that scope; missing: {actions}"),
            params={"actions": ", ".join(missing)},
            extra={"missing_actions": missing},
        )


def require_credential(
    principal: Principal,
    holder: uuid.UUID | None,
    actions: Iterable[str] = (),
    scope: Scope | None = None,
    *,
    via: str | None = None,
) -> None:
    """403 unless ``principal`` may issue a credential for the account ``holder`` (None: an account being
    created, such as a new system client) carrying ``actions`` within ``scope`` (default: the principal's own
    tenant and department). For oneself no managing action is needed, only holding every action; for another
    account ``principal`` needs the managing action ``via`` over ``scope`` as well (without one, never)."""
    within = scope if scope is not None else Scope(principal.tenant_code, principal.department_code)
    # A credential's secret is in its issuer's hands: an action given by name only must be held by name.
    if holder == principal.user_id:
        require_delegation(principal, actions, within, via=None, takeover=True)
        return
    if via is None:
        raise Problem("forbidden", detail=N_("You may issue credentials only for your own account here."))
    require_delegation(principal, actions, within, via=via, takeover=True)


def require_authority_over(principal: Principal, held: Iterable[tuple[Iterable[str], Scope]], *, via: str) -> None:
    """403 unless ``principal`` could have given every role the target account holds (``held``: each role's
    actions with its scope). Taking over an account — resetting its second factor, re-enabling it — is
    handing on what it holds, so the same rule applies."""
    missing: set[str] = set()
    for actions, scope in held:
        missing.update(missing_for(principal, actions, scope, via=via))
    if missing:
        raise Problem(
            "forbidden",
            detail=N_("This account holds more than you do; ask an administrator who holds it all. Missing: {actions}"),
            params={"actions": ", ".join(sorted(missing))},
            extra={"missing_actions": sorted(missing)},
        )
