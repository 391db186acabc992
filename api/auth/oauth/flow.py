"""Provider sign-in operations: the ID-token grant, the redirect flow (`/authorize` → provider → `/callback`) and
the PKCE code exchange, GoTrue's wire (supabase/auth `internal/api/token_oidc.go`, `external.go`, `pkce.go`,
`token.go::PKCE`).

The OAuth `state` is the id of an `auth.flow_state` row plus an HMAC of it (keyed by JWT_SECRET), so a forged
state is refused before the database is asked. The row binds the flow to its provider, its `redirect_to`, the
client's PKCE challenge and any linking target; it is single use (claimed by the first callback) and lives
FLOW_STATE_SECONDS from its creation, as does the PKCE `auth_code` it carries.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import re
import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import httpx

from api.auth.errors import AuthError, ErrorCode, OAuthError, validation_failed
from api.auth.oauth.accounts import LinkErrorCode, needs_verification_error, sign_in_with_provider, start_oauth_session
from api.auth.oauth.oidc import IdTokenError, IdTokenErrorName, OidcCache, ProviderUnavailable, verify_id_token
from api.auth.oauth.providers import DEFAULT_SCOPES, KNOWN_PROVIDERS, Provider, configured_providers
from api.auth.redirects import resolve_redirect
from api.auth.service import AuthContext, IssuedSession, utcnow
from db import auth as auth_db
from db import auth_flow
from db.uow import unit_of_work

log = logging.getLogger(__name__)

FLOW_STATE_SECONDS = 300  # GoTrue's FLOW_STATE_EXPIRY_DURATION default (and minimum)
FLOW_STATE_KEEP_SECONDS = 24 * 3600  # rows older than this are swept when new flows start
TOKEN_EXCHANGE_TIMEOUT_SECONDS = 10
CODE_CHALLENGE = re.compile(r"^[a-zA-Z0-9._~-]{43,128}$")
CODE_CHALLENGE_METHODS = ("s256", "plain")
# OAuth parameters segbase sets itself: never taken from the client's query (GoTrue strips the same).
RESERVED_PARAMS = frozenset({"client_id", "client_secret", "redirect_uri", "response_type", "state", "code_challenge",
                             "code_challenge_method", "code_verifier", "provider", "redirect_to", "scopes",
                             "skip_http_redirect", "apikey"})
MAX_PASSTHROUGH_PARAMS = 20

# Discovery documents and keys, per API process (gunicorn forks before any request fills it).
OIDC_CACHE = OidcCache()


@dataclass
class ProviderSession:
    session: IssuedSession
    provider_token: str | None = None
    provider_refresh_token: str | None = None


@dataclass
class CallbackResult:
    """Where the callback sends the browser."""

    location: str
    extra: dict[str, Any] = field(default_factory=dict)


def provider_for(ctx: AuthContext, name: str | None) -> Provider:
    providers = configured_providers(ctx.settings)
    if name and name in providers:
        return providers[name]
    if name in KNOWN_PROVIDERS:
        raise AuthError(f"Provider {name} is not enabled", status=400, code=LinkErrorCode.PROVIDER_DISABLED)
    raise validation_failed(f"Unsupported provider: provider {name or '(none)'} could not be found")


def _unavailable(provider: Provider, exc: Exception) -> AuthError:
    log.warning("oidc_provider_unavailable", extra={"provider": provider.name, "error": str(exc)})
    return AuthError(f"The {provider.name} sign-in service could not be reached; try again", status=503,
                     code=LinkErrorCode.UNEXPECTED_FAILURE)


# --- ID-token grant --------------------------------------------------------------------------------------------

def id_token_grant(ctx: AuthContext, *, provider_name: str | None, id_token: str | None, nonce: str | None,
                   access_token: str | None, link_to: str | None = None, user_agent: str | None = None,
                   ip: str | None = None) -> IssuedSession:
    if not id_token:
        raise OAuthError("id_token required", status=400, code=IdTokenErrorName.INVALID_REQUEST)
    if not provider_name:
        raise OAuthError("provider or client_id and issuer required", status=400, code=IdTokenErrorName.INVALID_REQUEST)
    provider = provider_for(ctx, provider_name)
    try:
        claims = verify_id_token(OIDC_CACHE, provider, id_token, nonce=nonce or None,
                                 access_token=access_token or None)
    except IdTokenError as exc:
        raise OAuthError(exc.message, status=400, code=exc.error) from exc
    except ProviderUnavailable as exc:
        raise _unavailable(provider, exc) from exc
    now = utcnow()
    with unit_of_work(ctx.engine, auth_db.AUTH_ADMIN) as uow:
        outcome = sign_in_with_provider(uow, ctx.settings, provider=provider.name, claims=claims, now=now,
                                        link_to=link_to)
        session = None if outcome.needs_verification else start_oauth_session(uow, ctx.settings, outcome.user, now,
                                                                               user_agent, ip)
    if session is None:
        raise needs_verification_error(provider.name)
    return session


# --- redirect flow: /authorize ---------------------------------------------------------------------------------

def sign_state(ctx: AuthContext, flow_id: str) -> str:
    mac = hmac.new(ctx.settings.jwt_secret.get_secret_value().encode(), f"segbase.oauth-state:{flow_id}".encode(),
                   hashlib.sha256).digest()
    return f"{flow_id}.{base64.urlsafe_b64encode(mac[:18]).decode()}"


def unsign_state(ctx: AuthContext, state: str) -> str | None:
    flow_id, _, _ = state.partition(".")
    try:
        uuid.UUID(flow_id)
    except ValueError:
        return None
    return flow_id if hmac.compare_digest(sign_state(ctx, flow_id), state) else None


def callback_url(ctx: AuthContext) -> str:
    return f"{ctx.settings.public_url}/auth/v1/callback"


def authorize_url(ctx: AuthContext, *, provider_name: str | None, redirect_to: str | None, referer: str | None,
                  scopes: str | None, code_challenge: str | None, code_challenge_method: str | None,
                  query: list[tuple[str, str]], link_to: str | None = None,
                  own_page: str | None = None) -> str:
    """Store a flow state and answer the provider's authorization URL. `own_page` is a page of segbase's own
    (the console's sign-in) to return to instead of a client's `redirect_to`."""
    provider = provider_for(ctx, provider_name)
    if not provider.redirect_capable:
        raise validation_failed(f"Unsupported provider: {provider.name} is enabled for ID-token sign-in only "
                                f"(the redirect flow needs AUTH_{provider.name.upper()}_CLIENT_SECRET)")
    if bool(code_challenge) != bool(code_challenge_method):
        raise validation_failed("PKCE flow requires code_challenge_method and code_challenge")
    method = code_challenge_method.lower() if code_challenge_method else None
    if code_challenge and not CODE_CHALLENGE.match(code_challenge):
        raise validation_failed("code challenge has to be between 43 and 128 characters of [a-zA-Z0-9._~-]")
    if method is not None and method not in CODE_CHALLENGE_METHODS:
        raise validation_failed(f"code challenge method not supported: {code_challenge_method} (use s256 or plain)")
    passthrough = [(key, value) for key, value in query if key not in RESERVED_PARAMS]
    if len(passthrough) > MAX_PASSTHROUGH_PARAMS:
        raise validation_failed(f"too many query parameters (at most {MAX_PASSTHROUGH_PARAMS} pass to the provider)")
    redirect = own_page or resolve_redirect(redirect_to, ctx.settings, referer=referer)
    try:
        endpoint = OIDC_CACHE.document(provider.discovery_url).get("authorization_endpoint")
    except ProviderUnavailable as exc:
        raise _unavailable(provider, exc) from exc
    if not isinstance(endpoint, str):
        raise _unavailable(provider, ValueError("no authorization_endpoint in the discovery document"))
    with unit_of_work(ctx.engine, auth_db.AUTH_ADMIN) as uow:
        flow_id = auth_flow.insert_flow_state(uow=uow, provider=provider.name, referrer=redirect,
                                              code_challenge=code_challenge or None, code_challenge_method=method,
                                              linking_target_id=link_to, now=utcnow(),
                                              keep_seconds=FLOW_STATE_KEEP_SECONDS)
    requested = [scope for scope in re.split(r"[,\s]+", scopes or "") if scope]
    scope = " ".join(dict.fromkeys([*DEFAULT_SCOPES, *requested]))
    params = [("client_id", provider.client_ids[0]), ("redirect_uri", callback_url(ctx)), ("response_type", "code"),
              ("scope", scope), ("state", sign_state(ctx, flow_id)), *passthrough]
    return _with_query(endpoint, params)


def _with_query(url: str, params: list[tuple[str, str]]) -> str:
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True) + params
    return urlunsplit(parts._replace(query=urlencode(query)))


# --- redirect flow: /callback ----------------------------------------------------------------------------------

def error_redirect(target: str, error: str, code: str, description: str) -> str:
    """GoTrue's error redirect: the error in the query and again in the fragment (`sb` marks Supabase's)."""
    fields = [("error", error), ("error_code", code), ("error_description", description)]
    parts = urlsplit(target)
    query = parse_qsl(parts.query, keep_blank_values=True) + fields
    return urlunsplit(parts._replace(query=urlencode(query), fragment=urlencode([*fields, ("sb", "")])))


def _oauth_error_name(exc: AuthError) -> str:
    if exc.code in (ErrorCode.USER_BANNED, LinkErrorCode.PROVIDER_EMAIL_NEEDS_VERIFICATION, "signup_disabled"):
        return "access_denied"
    return {400: "invalid_request", 401: "unauthorized_client", 403: "access_denied",
            503: "temporarily_unavailable"}.get(exc.status, "server_error")


def callback(ctx: AuthContext, args: dict[str, str], *, user_agent: str | None, ip: str | None) -> str:
    """The provider sent the browser back: answer where to send it next (always a redirect)."""
    settings = ctx.settings
    site = settings.auth_site_url
    state = args.get("state") or ""
    if not state:
        return error_redirect(site, "invalid_request", LinkErrorCode.BAD_OAUTH_CALLBACK, "OAuth state parameter missing")
    flow_id = unsign_state(ctx, state)
    if flow_id is None:
        return error_redirect(site, "invalid_request", LinkErrorCode.BAD_OAUTH_STATE, "OAuth state parameter is invalid")
    now = utcnow()
    with unit_of_work(ctx.engine, auth_db.AUTH_ADMIN) as uow:
        flow = auth_flow.find_flow_state(uow=uow, flow_id=flow_id, for_update=True)
        problem = None
        if flow is None:
            problem = (LinkErrorCode.BAD_OAUTH_STATE, "OAuth state not found or expired")
        elif flow["auth_code"] is not None:
            problem = (LinkErrorCode.FLOW_STATE_ALREADY_USED, "State has already been used")
        elif flow["created_at"] + timedelta(seconds=FLOW_STATE_SECONDS) < now:
            problem = (LinkErrorCode.BAD_OAUTH_STATE, "OAuth state has expired")
        else:
            flow = {**flow, "auth_code": str(uuid.uuid4())}
            auth_flow.claim_flow_state(uow=uow, flow_id=flow_id, auth_code=flow["auth_code"], now=now)
    if problem is not None:
        return error_redirect(site, "invalid_request", problem[0], problem[1])
    assert flow is not None
    target = flow["referrer"] or site
    try:
        return _finish_callback(ctx, flow, args, user_agent=user_agent, ip=ip)
    except AuthError as exc:
        with unit_of_work(ctx.engine, auth_db.AUTH_ADMIN) as uow:
            auth_flow.delete_flow_state(uow=uow, flow_id=flow_id)
        return error_redirect(target, _oauth_error_name(exc), exc.code, exc.message)


def _finish_callback(ctx: AuthContext, flow: dict[str, Any], args: dict[str, str], *, user_agent: str | None,
                     ip: str | None) -> str:
    flow_id = str(flow["id"])
    target = flow["referrer"] or ctx.settings.auth_site_url
    if args.get("error"):  # the provider's own refusal (the user cancelled): passed on as it came
        with unit_of_work(ctx.engine, auth_db.AUTH_ADMIN) as uow:
            auth_flow.delete_flow_state(uow=uow, flow_id=flow_id)
        description = args.get("error_description") or args["error"]
        return error_redirect(target, args["error"][:100], "provider_error", description[:500])
    if not args.get("code"):
        raise AuthError("OAuth code missing", status=400, code=LinkErrorCode.BAD_OAUTH_CALLBACK)
    provider = provider_for(ctx, flow["provider_type"])
    tokens = _exchange_code(ctx, provider, args["code"])
    try:
        claims = verify_id_token(OIDC_CACHE, provider, tokens["id_token"], nonce=None,
                                 access_token=tokens.get("access_token"), check_nonce=False)
    except IdTokenError as exc:
        raise AuthError(f"Error validating the {provider.name} ID token: {exc.message}", status=400,
                        code=LinkErrorCode.BAD_OAUTH_CALLBACK) from exc
    except ProviderUnavailable as exc:
        raise _unavailable(provider, exc) from exc
    now = utcnow()
    link_to = str(flow["linking_target_id"]) if flow["linking_target_id"] else None
    pkce = flow["code_challenge"] is not None
    with unit_of_work(ctx.engine, auth_db.AUTH_ADMIN) as uow:
        outcome = sign_in_with_provider(uow, ctx.settings, provider=provider.name, claims=claims, now=now,
                                        link_to=link_to)
        if outcome.needs_verification:
            auth_flow.delete_flow_state(uow=uow, flow_id=flow_id)
            session = None
        elif pkce:
            auth_flow.issue_auth_code(uow=uow, flow_id=flow_id, user_id=outcome.user["id"], now=now,
                                      provider_access_token=tokens.get("access_token"),
                                      provider_refresh_token=tokens.get("refresh_token"))
            session = None
        else:
            session = start_oauth_session(uow, ctx.settings, outcome.user, now, user_agent, ip)
            auth_flow.delete_flow_state(uow=uow, flow_id=flow_id)
    if outcome.needs_verification:
        raise needs_verification_error(provider.name)
    if session is None:
        return _with_query(target, [("code", str(flow["auth_code"]))])
    return _implicit_redirect(target, session, tokens)


def _implicit_redirect(target: str, session: IssuedSession, tokens: dict[str, Any]) -> str:
    """GoTrue's implicit answer (supabase/auth `internal/tokens/service.go::AsRedirectURL`): the session in the
    fragment, keys sorted, `sb` marking it as Supabase's."""
    fields = {"access_token": session.access.token, "expires_at": str(session.access.expires_at),
              "expires_in": str(session.access.expires_in), "refresh_token": session.refresh_token,
              "token_type": "bearer", "sb": ""}
    if tokens.get("access_token"):
        fields["provider_token"] = tokens["access_token"]
    if tokens.get("refresh_token"):
        fields["provider_refresh_token"] = tokens["refresh_token"]
    parts = urlsplit(target)
    return urlunsplit(parts._replace(fragment=urlencode(sorted(fields.items()))))


def _exchange_code(ctx: AuthContext, provider: Provider, code: str) -> dict[str, Any]:
    """The authorization code for the provider's tokens at its token endpoint (client_secret_post)."""
    try:
        endpoint = OIDC_CACHE.document(provider.discovery_url).get("token_endpoint")
    except ProviderUnavailable as exc:
        raise _unavailable(provider, exc) from exc
    if not isinstance(endpoint, str):
        raise _unavailable(provider, ValueError("no token_endpoint in the discovery document"))
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": callback_url(ctx),
            "client_id": provider.client_ids[0], "client_secret": provider.client_secret or ""}
    try:
        with httpx.Client(timeout=TOKEN_EXCHANGE_TIMEOUT_SECONDS, follow_redirects=False) as http:
            response = http.post(endpoint, data=form, headers={"Accept": "application/json"})
        tokens = response.json() if response.status_code == 200 else None
    except (httpx.HTTPError, ValueError) as exc:
        raise _unavailable(provider, exc) from exc
    if not isinstance(tokens, dict) or not isinstance(tokens.get("id_token"), str):
        log.info("oauth_code_exchange_refused", extra={"provider": provider.name, "status": response.status_code})
        raise AuthError(f"Error exchanging the code with {provider.name}", status=400,
                        code=LinkErrorCode.BAD_OAUTH_CALLBACK)
    return tokens


# --- PKCE code exchange ----------------------------------------------------------------------------------------

def _challenge_matches(method: str | None, challenge: str, verifier: str) -> bool:
    if method == "plain":
        return hmac.compare_digest(verifier, challenge)
    digest = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return hmac.compare_digest(digest, challenge)


def _consume_auth_code(uow, *, auth_code: str, code_verifier: str, now) -> dict[str, Any] | None:
    """The user a PKCE code was issued for, its flow state deleted (single use); None when it had expired (its
    row deleted too: the caller commits, then refuses)."""
    flow = auth_flow.find_flow_state_by_code(uow=uow, auth_code=auth_code)
    if flow is None or flow["user_id"] is None or flow["auth_code_issued_at"] is None:
        raise AuthError("invalid flow state, no valid flow state found", status=404,
                        code=LinkErrorCode.FLOW_STATE_NOT_FOUND)
    auth_flow.delete_flow_state(uow=uow, flow_id=str(flow["id"]))
    if flow["created_at"] + timedelta(seconds=FLOW_STATE_SECONDS) < now:
        return None
    if not _challenge_matches(flow["code_challenge_method"], flow["code_challenge"] or "", code_verifier):
        raise AuthError("code challenge does not match previously saved code verifier", status=400,
                        code=LinkErrorCode.BAD_CODE_VERIFIER)  # rolls back: the right verifier may still come
    user = auth_db.find_user_by_id(uow=uow, user_id=str(flow["user_id"]), for_update=True)
    if user is None:
        raise AuthError("invalid flow state, no valid flow state found", status=404,
                        code=LinkErrorCode.FLOW_STATE_NOT_FOUND)
    if user.get("banned_until") is not None and user["banned_until"] > now:
        raise AuthError("User is banned", status=403, code=ErrorCode.USER_BANNED)
    return {"flow": flow, "user": user}


def _expired_code() -> AuthError:
    return AuthError("invalid flow state, flow state has expired", status=422, code=LinkErrorCode.FLOW_STATE_EXPIRED)


def pkce_grant(ctx: AuthContext, *, auth_code: str | None, code_verifier: str | None,
               user_agent: str | None = None, ip: str | None = None) -> ProviderSession:
    if not auth_code or not code_verifier:
        raise validation_failed("invalid request: both auth code and code verifier should be non-empty")
    now = utcnow()
    with unit_of_work(ctx.engine, auth_db.AUTH_ADMIN) as uow:
        consumed = _consume_auth_code(uow, auth_code=auth_code, code_verifier=code_verifier, now=now)
        if consumed is not None:
            user = auth_db.record_sign_in(uow=uow, user_id=consumed["user"]["id"], now=now) or consumed["user"]
            session = start_oauth_session(uow, ctx.settings, user, now, user_agent, ip)
    if consumed is None:
        raise _expired_code()
    flow = consumed["flow"]
    return ProviderSession(session, flow["provider_access_token"], flow["provider_refresh_token"])


def redeem_auth_code(ctx: AuthContext, *, auth_code: str, code_verifier: str) -> dict[str, Any]:
    """The user behind a PKCE code, for segbase's own pages (the console): the code is spent, no API session is
    started."""
    if not auth_code or not code_verifier:
        raise validation_failed("invalid request: both auth code and code verifier should be non-empty")
    with unit_of_work(ctx.engine, auth_db.AUTH_ADMIN) as uow:
        consumed = _consume_auth_code(uow, auth_code=auth_code, code_verifier=code_verifier, now=utcnow())
    if consumed is None:
        raise _expired_code()
    return consumed["user"]
