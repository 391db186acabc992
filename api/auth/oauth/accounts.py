"""Which account a provider sign-in lands in, and the sessions it starts.

GoTrue's decision (supabase/auth `internal/models/linking.go::DetermineAccountLinking`,
`internal/api/external.go::createAccountFromExternalIdentity`) with one deliberate departure:

1. The provider identity (`provider`, `sub`) exists: sign in its user; identity data replaced, `user_metadata`
   merged, `app_metadata.providers` refreshed.
2. A linking target (a signed-in user linking a provider): the identity is attached to that user; one already on
   any user is refused with 422 `identity_already_exists`.
3. A live account has the provider's email: the identity is linked to it **only when the provider says
   `email_verified: true`**, whatever AUTH_MAILER_AUTOCONFIRM says (GoTrue also links any email when autoconfirm
   is on, which lets whoever controls a provider account with an unverified address take over the account that
   owns it). Otherwise 422 `provider_email_needs_verification`. An unconfirmed account that gets linked loses its
   other identities and its password first (the pre-account-takeover defence GoTrue applies), then is confirmed.
4. No account has the email: a new user, confirmed when the provider verified the email or autoconfirm is on;
   an unconfirmed new user gets no session (422 `provider_email_needs_verification`), as in GoTrue.
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from api.auth.errors import AuthError, ErrorCode
from api.auth.refresh_tokens import new_refresh_token
from api.auth.service import IssuedSession, is_banned
from api.identity import mint_access_token
from db import auth as auth_db
from db import auth_flow
from db.uow import UnitOfWork
from schemas.settings import Settings


class LinkErrorCode(StrEnum):
    """GoTrue's codes for identity and provider errors (supabase/auth `internal/api/apierrors/errorcode.go`)."""

    BAD_CODE_VERIFIER = "bad_code_verifier"
    BAD_OAUTH_CALLBACK = "bad_oauth_callback"
    BAD_OAUTH_STATE = "bad_oauth_state"
    FLOW_STATE_ALREADY_USED = "flow_state_already_used"
    FLOW_STATE_EXPIRED = "flow_state_expired"
    FLOW_STATE_NOT_FOUND = "flow_state_not_found"
    IDENTITY_ALREADY_EXISTS = "identity_already_exists"
    IDENTITY_NOT_FOUND = "identity_not_found"
    MANUAL_LINKING_DISABLED = "manual_linking_disabled"
    PROVIDER_DISABLED = "provider_disabled"
    PROVIDER_EMAIL_NEEDS_VERIFICATION = "provider_email_needs_verification"
    SINGLE_IDENTITY_NOT_DELETABLE = "single_identity_not_deletable"
    UNEXPECTED_FAILURE = "unexpected_failure"


@dataclass
class ProviderSignIn:
    user: dict[str, Any]
    needs_verification: bool = False  # a new, unconfirmed user: no session


def _verified(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.lower() == "true")  # Apple sends "true"


def identity_data_from_claims(claims: dict[str, Any]) -> dict[str, Any]:
    """GoTrue's `identity_data` for an OpenID Connect provider (supabase/auth `internal/api/provider/provider.go::
    Claims`): empty fields left out, `email_verified`/`phone_verified` always present."""
    name = claims.get("name") or " ".join(part for part in (claims.get("given_name"), claims.get("family_name"))
                                          if isinstance(part, str) and part)
    data: dict[str, Any] = {"iss": claims.get("iss"), "sub": str(claims["sub"]), "name": name,
                            "picture": claims.get("picture"), "email": claims.get("email"),
                            "email_verified": _verified(claims.get("email_verified", claims.get("verified_email"))),
                            "phone_verified": False, "full_name": name, "avatar_url": claims.get("picture"),
                            "provider_id": str(claims["sub"])}
    if claims.get("hd"):
        data["custom_claims"] = {"hd": claims["hd"]}
    return {key: value for key, value in data.items()
            if value not in (None, "") or key in ("email_verified", "phone_verified")}


def _providers(identities: list[dict[str, Any]], app_metadata: dict[str, Any]) -> dict[str, Any]:
    """GoTrue's `app_metadata.providers`: the user's identities' providers in order; `provider` keeps the first."""
    providers: list[str] = []
    for identity in identities:
        if identity["provider"] not in providers:
            providers.append(identity["provider"])
    meta = dict(app_metadata)
    meta["providers"] = providers
    if providers and meta.get("provider") not in providers:
        meta["provider"] = providers[0]
    return meta


def _refresh_user(uow: UnitOfWork, user: dict[str, Any], identity_data: dict[str, Any], now: datetime, *,
                  confirm: bool = False, clear_password: bool = False, signed_in: bool = True) -> dict[str, Any]:
    identities = auth_flow.user_identities(uow=uow, user_id=user["id"])
    metadata = {**(user.get("raw_user_meta_data") or {}), **identity_data}
    updated = auth_flow.update_provider_user(uow=uow, user_id=user["id"], user_metadata=metadata,
                                             app_metadata=_providers(identities, user.get("raw_app_meta_data") or {}),
                                             now=now, confirm=confirm, clear_password=clear_password,
                                             signed_in=signed_in)
    assert updated is not None
    return updated


def _refuse_banned(user: dict[str, Any], now: datetime) -> None:
    if is_banned(user, now) or user.get("deleted_at") is not None:
        raise AuthError("User is banned", status=403, code=ErrorCode.USER_BANNED)


def sign_in_with_provider(uow: UnitOfWork, settings: Settings, *, provider: str, claims: dict[str, Any],
                          now: datetime, link_to: str | None = None) -> ProviderSignIn:
    """The account decision above, in the caller's transaction."""
    data = identity_data_from_claims(claims)
    sub = data["sub"]
    identity = auth_flow.find_identity_for_update(uow=uow, provider=provider, provider_id=sub)
    if link_to is not None:
        if identity is not None:
            other = identity["user_id"] != link_to
            raise AuthError("Identity is already linked to another user" if other else "Identity is already linked",
                            status=422, code=LinkErrorCode.IDENTITY_ALREADY_EXISTS)
        user = auth_db.find_user_by_id(uow=uow, user_id=link_to, for_update=True)
        if user is None:
            raise AuthError("User from sub claim in JWT does not exist", status=403, code=ErrorCode.USER_NOT_FOUND)
        _refuse_banned(user, now)
        auth_db.insert_identity(uow=uow, user_id=user["id"], provider=provider, provider_id=sub,
                                identity_data=data, now=now)
        return ProviderSignIn(_refresh_user(uow, user, data, now))
    verified = bool(data["email_verified"])
    if identity is not None:
        user = auth_db.find_user_by_id(uow=uow, user_id=identity["user_id"], for_update=True)
        assert user is not None  # identities cascade with their user
        _refuse_banned(user, now)
        auth_db.update_identity(uow=uow, identity_id=identity["id"], identity_data=data, now=now, signed_in=True)
        confirm = verified and (user.get("email") or "").lower() == (data.get("email") or "").lower()
        user = _refresh_user(uow, user, data, now, confirm=confirm)
        return ProviderSignIn(user, needs_verification=user.get("email_confirmed_at") is None)
    email = (data.get("email") or "").strip().lower() or None
    if email is not None:
        auth_flow.lock_email(uow=uow, email=email)
        owners = auth_flow.find_users_by_email(uow=uow, email=email)
        if owners:
            if not verified:
                raise AuthError(f"Unverified email with {provider}: an account with this email exists, and it is "
                                f"linked only once {provider} reports the email as verified",
                                status=422, code=LinkErrorCode.PROVIDER_EMAIL_NEEDS_VERIFICATION)
            user = owners[0]
            _refuse_banned(user, now)
            unconfirmed = user.get("email_confirmed_at") is None
            if unconfirmed:
                auth_flow.delete_other_identities(uow=uow, user_id=user["id"], keep_provider=provider)
            auth_db.insert_identity(uow=uow, user_id=user["id"], provider=provider, provider_id=sub,
                                    identity_data=data, now=now)
            return ProviderSignIn(_refresh_user(uow, user, data, now, confirm=True, clear_password=unconfirmed))
    confirmed = verified or settings.auth_mailer_autoconfirm
    user = auth_flow.insert_provider_user(uow=uow, email=email, confirmed=confirmed, provider=provider,
                                          user_metadata=data, now=now)
    auth_db.insert_identity(uow=uow, user_id=user["id"], provider=provider, provider_id=sub, identity_data=data,
                            now=now)
    user = _refresh_user(uow, user, data, now, signed_in=confirmed)
    return ProviderSignIn(user, needs_verification=not confirmed)


def needs_verification_error(provider: str) -> AuthError:
    return AuthError(f"Unverified email with {provider}: confirm the email address before signing in",
                     status=422, code=LinkErrorCode.PROVIDER_EMAIL_NEEDS_VERIFICATION)


def start_oauth_session(uow: UnitOfWork, settings: Settings, user: dict[str, Any], now: datetime,
                        user_agent: str | None, ip: str | None) -> IssuedSession:
    """A session, its first refresh token and an access token whose `amr` says `oauth`, in the caller's unit."""
    session_id = auth_db.create_session(uow=uow, user_id=user["id"], now=now, user_agent=user_agent, ip=ip)
    refresh_token = new_refresh_token()
    auth_db.insert_refresh_token(uow=uow, token=refresh_token, session_id=session_id, user_id=user["id"], now=now)
    access = mint_access_token(settings, user=user, session_id=session_id, amr_method="oauth",
                               now=int(now.timestamp()))
    return IssuedSession(access, refresh_token, user)


def unlink_identity(uow: UnitOfWork, *, user: dict[str, Any], identity_id: str, now: datetime) -> None:
    """Remove one of the user's identities, never the last one; `app_metadata.providers` follows."""
    try:
        uuid.UUID(identity_id)
    except ValueError:
        raise AuthError("identity_id must be an UUID", status=404, code=ErrorCode.VALIDATION_FAILED) from None
    identities = auth_flow.user_identities(uow=uow, user_id=user["id"])
    if not any(identity["id"] == identity_id for identity in identities):
        raise AuthError("Identity doesn't exist", status=422, code=LinkErrorCode.IDENTITY_NOT_FOUND)
    if len(identities) <= 1:
        raise AuthError("User must have at least 1 identity after unlinking", status=422,
                        code=LinkErrorCode.SINGLE_IDENTITY_NOT_DELETABLE)
    auth_db.delete_identity(uow=uow, user_id=user["id"], identity_id=identity_id)
    remaining = [identity for identity in identities if identity["id"] != identity_id]
    auth_flow.set_app_metadata(uow=uow, user_id=user["id"], now=now,
                               app_metadata=_providers(remaining, user.get("raw_app_meta_data") or {}))
