"""Sign-in with a provider: `GET /authorize`, `GET|POST /callback`, and the `id_token` and `pkce` grants of
`POST /token` (dispatched here from api/auth/views/sessions.py)."""
from __future__ import annotations

from typing import Any

from flask import Response, jsonify, redirect, request
from pydantic import BaseModel, ConfigDict

from api.auth.bodies import parse_body
from api.auth.blueprint import OPEN_ENDPOINTS, auth_context, bp, limiter, request_ip, user_claims
from api.auth.errors import AuthError, OAuthError
from api.auth.oauth.accounts import LinkErrorCode
from api.auth.oauth.flow import authorize_url, callback, id_token_grant, pkce_grant
from api.auth.oauth.oidc import IdTokenErrorName
from api.auth.responses import session_json
from api.auth.service import load_user
from api.identity import credentials_from_request

PROVIDER_GRANTS = ("id_token", "pkce")


class IdTokenGrantBody(BaseModel):
    model_config = ConfigDict(extra="ignore")  # clients add gotrue_meta_security, captcha_token…

    provider: str | None = None
    id_token: str | None = None
    access_token: str | None = None
    nonce: str | None = None
    link_identity: bool | None = None


class PkceGrantBody(BaseModel):
    model_config = ConfigDict(extra="ignore")

    auth_code: str | None = None
    code_verifier: str | None = None


def manual_linking_enabled() -> None:
    if not auth_context().settings.auth_manual_linking_enabled:
        raise AuthError("Manual linking is disabled", status=404, code=LinkErrorCode.MANUAL_LINKING_DISABLED)


def linking_user() -> dict[str, Any]:
    """The signed-in user a link request comes from (its session checked)."""
    apikey, bearer = credentials_from_request(request)
    if not bearer or bearer == apikey:
        raise OAuthError("Linking requires a valid user access token in Authorization", status=400,
                         code=IdTokenErrorName.INVALID_REQUEST)
    return load_user(auth_context(), user_claims())


def provider_grant(grant_type: str) -> Response:
    ip = request_ip()
    limiter().sign_in_ip(ip)
    user_agent = request.headers.get("User-Agent")
    if grant_type == "pkce":
        body = parse_body(PkceGrantBody)
        result = pkce_grant(auth_context(), auth_code=body.auth_code, code_verifier=body.code_verifier,
                            user_agent=user_agent, ip=ip)
        answer = session_json(result.session)
        if result.provider_token:
            answer["provider_token"] = result.provider_token
        if result.provider_refresh_token:
            answer["provider_refresh_token"] = result.provider_refresh_token
        return jsonify(answer)
    body = parse_body(IdTokenGrantBody)
    link_to = None
    if body.link_identity:
        manual_linking_enabled()
        link_to = linking_user()["id"]
    session = id_token_grant(auth_context(), provider_name=body.provider, id_token=body.id_token, nonce=body.nonce,
                             access_token=body.access_token, link_to=link_to, user_agent=user_agent, ip=ip)
    return jsonify(session_json(session))


def authorize_response(link_to: str | None) -> Response:
    args = request.args
    url = authorize_url(auth_context(), provider_name=args.get("provider"), redirect_to=args.get("redirect_to"),
                        referer=request.headers.get("Referer"), scopes=args.get("scopes"),
                        code_challenge=args.get("code_challenge"),
                        code_challenge_method=args.get("code_challenge_method"),
                        query=list(args.items(multi=True)), link_to=link_to)
    if args.get("skip_http_redirect") == "true":
        return jsonify({"url": url})
    return redirect(url)


@bp.get("/authorize")
def get_authorize():
    limiter().sign_in_ip(request_ip())
    return authorize_response(None)


@bp.route("/callback", methods=["GET", "POST"])
def oauth_callback():
    # The provider may answer with a form post (response_mode=form_post) or a query.
    args = {**request.form.to_dict(), **request.args.to_dict()}
    location = callback(auth_context(), args, user_agent=request.headers.get("User-Agent"), ip=request_ip())
    return redirect(location)


# A browser follows these without an apikey, as through Supabase's gateway (its open routes).
OPEN_ENDPOINTS.update({"auth.get_authorize", "auth.oauth_callback"})
