"""/console: the operator console's pages. Server-rendered (Jinja templates in api/console/templates), every action a
form POST with a CSRF token, answered by a redirect to the page it changed (or the page again with the error and
its status). Views are thin: parse the form, call one db/console.py function in one unit of work as service_role,
queue side effects after commit. The database checks the operator again in every action function.
"""
from __future__ import annotations

import logging
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import urlsplit

from flask import Blueprint, Response, g, redirect, render_template, request, url_for
from sqlalchemy.exc import DBAPIError
from werkzeug.exceptions import HTTPException

from api.auth.errors import RateLimitedError
from api.auth.limits import RateLimiter, client_ip
from api.auth.oauth.flow import authorize_url, redeem_auth_code
from api.auth.oauth.providers import configured_providers
from api.auth.passwords import PasswordHasher
from api.auth.service import AuthContext
from api.console import session as cookies
from api.console.overview import collect_overview
from api.console.signin import SignInError, admit_operator, sign_in_operator, sign_out
from api.errors import ApiError
from api.identity import forget_session
from api.services import services
from broker.tasks import enqueue_webhook_event
from db import console as console_db
from db.dispatch import dispatch_health
from db.uow import Caller, unit_of_work

log = logging.getLogger(__name__)

bp = Blueprint("console", __name__, template_folder="templates", static_folder="static",
               static_url_path="/static")

PUBLIC_ENDPOINTS = {"console.login", "console.static", "console.google_sign_in", "console.google_signed_in"}
MAX_REASON = 500
MAX_QUERY = 200
MAX_CREDITS = 1_000_000_000
WINDOWS_HOURS = {"1": 1, "6": 6, "24": 24, "168": 168, "720": 720, "all": None}
NOTICES = {
    "signed_in": "Signed in.",
    "replayed": "The event is back in the inbox as received and queued: a worker applies it like any other event.",
    "not_replayed": "Nothing to replay: only a rejected event can be replayed, and this one is not rejected.",
    "bulk_replayed": "{count} rejected events moved back to received and queued.",
    "granted": "Credits granted.",
    "revoked": "Credits revoked.",
    "banned": "User banned and signed out everywhere.",
    "unbanned": "User unbanned.",
    "unchanged": "Nothing changed: the user was already in that state.",
    "cancelled": "Job cancelled: its reservation is released and nothing is charged.",
    "not_cancelled": "Nothing to cancel: the job had already finished.",
    "dispatch_due_now": "The job is due now: dispatch sends (or lets a worker claim) it at once, with a fresh retry budget.",
    "dispatch_resubmitted": "The failed job was submitted again as a new job of the same user (it reserves credits).",
    "dispatch_not_retryable": "Nothing to retry: the job is not waiting for a retry and did not fail in dispatch.",
    "dispatch_enabled": "Dispatch is enabled and its circuit closed: queued jobs resume.",
}
REFUSAL_STATUS = {"insufficient_credits": 409, "not_operator": 403, "user_not_found": 404,
                  "event_not_found": 404, "result_not_found": 404}


class ConsoleError(ApiError):
    """A console error: rendered as an HTML page with its status (the console's one envelope)."""


def _service_uow():
    return unit_of_work(services().engine, Caller.service())


def _hasher() -> PasswordHasher:
    svc = services()
    if svc.password_hasher is None:  # shared with /auth/v1; made in the serving process, as api/auth does
        svc.password_hasher = PasswordHasher(svc.settings.auth_hash_threads)
    return svc.password_hasher


def _limiter() -> RateLimiter:
    svc = services()
    if svc.auth_limiter is None:
        svc.auth_limiter = RateLimiter(svc.redis, svc.settings)
    return svc.auth_limiter


# --- request hooks --------------------------------------------------------------------------------------------

def _same_origin(value: str) -> bool:
    return urlsplit(value).netloc == request.host


@bp.before_request
def _load_operator() -> Response | None:
    settings = services().settings
    if request.method == "POST":
        # SameSite=Strict keeps the cookie off cross-site requests; refusing a foreign Origin is the second lock.
        origin = request.headers.get("Origin")
        if origin and origin != "null" and not _same_origin(origin):
            raise ConsoleError("Cross-origin form posts are refused", status=403, code="csrf_failed")
    if request.endpoint in PUBLIC_ENDPOINTS:
        return None
    session_id = cookies.session_id_from_cookie(settings)
    user = None
    if session_id is not None:
        with _service_uow() as uow:
            user = console_db.session_user(uow=uow, session_id=session_id)
    if user is None:
        if request.method == "GET":
            return redirect(url_for("console.login", next=request.full_path.rstrip("?")))
        raise ConsoleError("Your console session ended; sign in again", status=401, code="not_signed_in")
    if not user.operator:
        raise ConsoleError("This account is not a console operator (or is banned): no console data is shown",
                           status=403, code="not_operator")
    g.console_session_id = session_id
    g.operator = user
    if request.method == "POST" and not cookies.csrf_ok(settings, session_id):
        raise ConsoleError("The form's CSRF token is missing or wrong: reload the page and submit again",
                           status=403, code="csrf_failed")
    return None


@bp.after_request
def _headers(response: Response) -> Response:
    response.headers["Cache-Control"] = "no-store"
    response.headers["Content-Security-Policy"] = (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


@bp.context_processor
def _template_globals() -> dict[str, Any]:
    def csrf_token() -> str:
        session_id = g.get("console_session_id")
        return cookies.csrf_token(services().settings, session_id) if session_id else ""

    return {"csrf_token": csrf_token, "operator": g.get("operator"), "fmt_time": _fmt_time,
            "dispatch_mode": services().settings.dispatch_mode,
            "notice": NOTICES.get(request.args.get("notice", ""), "").format(
                count=_int_arg("count", 0, minimum=0))}


def _render_error(status: int, code: str, message: str, **extra: Any) -> tuple[str, int]:
    return render_template("console/error.html", status=status, code=code, message=message, **extra), status


@bp.errorhandler(ApiError)
def _api_error(exc: ApiError):
    body, status = _render_error(exc.status, exc.code, exc.message)
    response = Response(body, status=status, mimetype="text/html")
    for name, value in exc.headers().items():
        response.headers[name] = value
    return response


@bp.errorhandler(HTTPException)
def _http_error(exc: HTTPException):
    return _render_error(exc.code or 500, (exc.name or "error").lower().replace(" ", "_"), exc.description or "")


@bp.errorhandler(Exception)
def _unexpected(exc: Exception):
    error_id = uuid.uuid4().hex
    log.exception("console: unhandled error %s (request %s)", error_id, g.get("request_id", "-"))
    return _render_error(500, "internal_error", f"Internal error (error id {error_id}); see the API log")


# --- parsing --------------------------------------------------------------------------------------------------

def _fmt_time(value: datetime | None) -> str:
    if value is None:
        return "—"
    return value.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def _int_arg(name: str, default: int, *, minimum: int = 0) -> int:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    try:
        return max(minimum, int(raw))
    except ValueError:
        return default


def _bounded(value: str, name: str, limit: int) -> str:
    value = value.strip()
    if len(value) > limit:
        raise ConsoleError(f"{name} is longer than {limit} characters", status=400, code="validation_failed")
    return value


def _choice(name: str, allowed: tuple[str, ...]) -> str | None:
    value = request.args.get(name) or None
    if value is not None and value not in allowed:
        raise ConsoleError(f"{name} must be one of {', '.join(allowed)}", status=400, code="validation_failed")
    return value


def _datetime(source: dict, name: str) -> datetime | None:
    raw = (source.get(name) or "").strip()
    if not raw:
        return None
    try:
        value = datetime.fromisoformat(raw)
    except ValueError as exc:
        raise ConsoleError(f"{name} must be a date and time like 2026-12-02T14:30 (UTC)", status=400,
                           code="validation_failed") from exc
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value


def _uuid_arg(value: str, name: str) -> str | None:
    value = value.strip()
    if not value:
        return None
    try:
        return str(uuid.UUID(value))
    except ValueError as exc:
        raise ConsoleError(f"{name} must be a UUID", status=400, code="validation_failed") from exc


def _reason(required: bool = True) -> str:
    reason = _bounded(request.form.get("reason", ""), "reason", MAX_REASON)
    if required and not reason:
        raise ConsoleError("A reason is required", status=400, code="validation_failed")
    return reason


def _refused(exc: DBAPIError) -> ConsoleError:
    refusal = console_db.refusal(exc)
    if refusal is None:
        raise exc
    return ConsoleError(refusal.message, status=REFUSAL_STATUS.get(refusal.code, 400), code=refusal.code)


# --- sign-in --------------------------------------------------------------------------------------------------

def _safe_next(value: str | None) -> str:
    """Only a console path: an open redirect to another site must not be possible."""
    if value and value.startswith("/console/") and not value.startswith("//") and "\\" not in value:
        return value
    return url_for("console.overview_page")


@bp.route("/login", methods=["GET", "POST"])
def login():
    settings = services().settings
    token, new_token = cookies.login_csrf_token(settings)
    error: ConsoleError | None = None
    email = ""
    if request.method == "POST":
        email = _bounded(request.form.get("email", ""), "email", 320)
        try:
            if not cookies.login_csrf_ok(settings):
                raise ConsoleError("The sign-in form's CSRF token is missing or wrong: reload the page and try again",
                                   status=403, code="csrf_failed")
            ip = client_ip(request.remote_addr, request.headers.get("X-Forwarded-For"), settings)
            try:
                _limiter().sign_in_ip(ip)
                if email:
                    _limiter().sign_in_email(email)
            except RateLimitedError as exc:
                raise _rate_limited(settings, exc) from exc
            signed_in = sign_in_operator(settings, services().engine, _hasher(), email=email,
                                         password=request.form.get("password", ""),
                                         user_agent=request.headers.get("User-Agent"), ip=ip)
        except (ConsoleError, SignInError) as exc:
            error = exc
        else:
            response = redirect(_safe_next(request.form.get("next")), code=303)
            cookies.set_session_cookie(response, settings, signed_in.session_id)
            return response
    return _login_page(settings, token, new_token, error=error, email=email)


def _login_page(settings, token: str, new_token: bool, *, error: ApiError | None = None,
                email: str = "") -> Response:
    body = render_template("console/login.html", csrf=token, email=email, error=error,
                           next=request.values.get("next", ""), google=_google_offered(settings))
    response = Response(body, status=error.status if error else 200, mimetype="text/html")
    if error is not None and "retry_after" in error.data:
        response.headers["Retry-After"] = str(error.data["retry_after"])
    if new_token:
        cookies.set_login_cookie(response, settings, token)
    return response


def _google_offered(settings) -> bool:
    google = configured_providers(settings).get("google")
    return google is not None and google.redirect_capable


def _rate_limited(settings, exc: RateLimitedError) -> ConsoleError:
    return ConsoleError(f"Too many sign-in attempts: try again in {exc.retry_after} s (AUTH_RATE_LIMIT_SIGN_IN = "
                        f"{settings.auth_rate_limit_sign_in} per AUTH_RATE_LIMIT_WINDOW_SECONDS = "
                        f"{settings.auth_rate_limit_window_seconds} s, per address and per email)",
                        status=429, code="over_request_rate_limit", retry_after=exc.retry_after)


@bp.get("/login/google")
def google_sign_in():
    """Start Google sign-in: the auth service's redirect flow in PKCE mode, returning to /console/login/google/done.
    The verifier stays in this browser (a cookie), so a code cannot be replayed into another browser."""
    settings = services().settings
    if not _google_offered(settings):
        raise ConsoleError("Google sign-in is not configured (AUTH_GOOGLE_ENABLED, AUTH_GOOGLE_CLIENT_IDS and "
                           "AUTH_GOOGLE_CLIENT_SECRET)", status=404, code="not_found")
    try:
        _limiter().sign_in_ip(client_ip(request.remote_addr, request.headers.get("X-Forwarded-For"), settings))
    except RateLimitedError as exc:
        raise _rate_limited(settings, exc) from exc
    verifier, challenge = cookies.new_pkce_pair()
    url = authorize_url(_auth_context(), provider_name="google", redirect_to=None, referer=None, scopes=None,
                        code_challenge=challenge, code_challenge_method="s256", query=[],
                        own_page=settings.console_url + "/login/google/done")
    response = redirect(url, code=303)
    cookies.set_pkce_cookie(response, settings, verifier)
    return response


@bp.get("/login/google/done")
def google_signed_in():
    settings = services().settings
    token, new_token = cookies.login_csrf_token(settings)
    verifier = cookies.pkce_verifier(settings)
    error: ApiError | None = None
    if request.args.get("error"):
        error = ConsoleError(f"Google sign-in did not complete: {request.args.get('error_description', '')[:300]}",
                             status=403, code=request.args.get("error_code") or "provider_error")
    elif not verifier or not request.args.get("code"):
        error = ConsoleError("Google sign-in did not start in this browser (or took too long): try again",
                             status=400, code="bad_oauth_callback")
    else:
        try:
            user = redeem_auth_code(_auth_context(), auth_code=request.args["code"], code_verifier=verifier)
            signed_in = admit_operator(settings, services().engine, user,
                                       user_agent=request.headers.get("User-Agent"), method="google",
                                       ip=client_ip(request.remote_addr, request.headers.get("X-Forwarded-For"),
                                                    settings))
        except (ApiError, SignInError) as exc:
            error = exc
        else:
            response = redirect(url_for("console.overview_page"), code=303)
            cookies.set_session_cookie(response, settings, signed_in.session_id)
            cookies.clear_pkce_cookie(response, settings)
            return response
    response = _login_page(settings, token, new_token, error=error)
    cookies.clear_pkce_cookie(response, settings)
    return response


def _auth_context() -> AuthContext:
    return AuthContext(services().settings, services().engine, _hasher())


@bp.post("/logout")
def logout():
    sign_out(services().engine, g.console_session_id)
    response = redirect(url_for("console.login"), code=303)
    cookies.clear_session_cookie(response, services().settings)
    return response


# --- overview -------------------------------------------------------------------------------------------------

@bp.get("/")
def index():
    return redirect(url_for("console.overview_page"))


@bp.get("/overview")
def overview_page():
    return render_template("console/overview.html", overview=collect_overview(services()))


@bp.get("/overview/live")
def overview_live():
    return render_template("console/_overview_live.html", overview=collect_overview(services()))


# --- webhook inbox --------------------------------------------------------------------------------------------

def _inbox_filter() -> tuple[console_db.InboxFilter, str]:
    state = _choice("state", console_db.INBOX_STATES)
    window = request.args.get("window") or "24"
    if window not in WINDOWS_HOURS:
        raise ConsoleError(f"window must be one of {', '.join(WINDOWS_HOURS)}", status=400, code="validation_failed")
    received_from = _datetime(request.args, "from")
    received_to = _datetime(request.args, "to")
    hours = WINDOWS_HOURS[window]
    if received_from is None and hours is not None:
        received_from = datetime.now(timezone.utc) - timedelta(hours=hours)
    result_id = _uuid_arg(request.args.get("result", ""), "result")
    return console_db.InboxFilter(state, received_from, received_to, result_id), window


@bp.get("/inbox")
def inbox_page():
    filters, window = _inbox_filter()
    before = _datetime(request.args, "before")
    with _service_uow() as uow:
        events = console_db.list_inbox(uow=uow, filters=filters, before=before)
    older = events[-1]["received_at"].isoformat() if len(events) == console_db.PAGE_SIZE else None
    return render_template("console/inbox.html", events=events, filters=filters, window=window, older=older,
                           states=console_db.INBOX_STATES, windows=WINDOWS_HOURS,
                           bulk_max=services().settings.console_bulk_replay_max)


def _event_or_404(event_id: str) -> dict[str, Any]:
    with _service_uow() as uow:
        event = console_db.get_inbox_event(uow=uow, event_id=event_id)
        history = console_db.list_audit(uow=uow, target_id=event_id) if event else []
    if event is None:
        raise ConsoleError("No such webhook event (it may have been pruned after INBOX_RETENTION_DAYS)",
                           status=404, code="event_not_found")
    event["history"] = history
    return event


@bp.get("/inbox/<uuid:event_id>")
def inbox_event_page(event_id: uuid.UUID):
    return render_template("console/inbox_event.html", event=_event_or_404(str(event_id)))


@bp.get("/inbox/<uuid:event_id>/live")
def inbox_event_live(event_id: uuid.UUID):
    return render_template("console/_event_state.html", event=_event_or_404(str(event_id)))


@bp.post("/inbox/<uuid:event_id>/replay")
def replay_event(event_id: uuid.UUID):
    celery = services().celery
    try:
        with _service_uow() as uow:
            outcome = console_db.replay_event(uow=uow, operator_id=g.operator.user_id, event_id=str(event_id))
            if outcome.replayed:
                uow.on_commit(lambda: enqueue_webhook_event(celery, str(event_id)))
    except DBAPIError as exc:
        raise _refused(exc) from exc
    return redirect(url_for("console.inbox_event_page", event_id=event_id,
                            notice="replayed" if outcome.replayed else "not_replayed"), code=303)


@bp.post("/inbox/replay")
def replay_bulk():
    settings = services().settings
    celery = services().celery
    received_from = _datetime(request.form, "from")
    received_to = _datetime(request.form, "to")
    try:
        with _service_uow() as uow:
            replayed = console_db.replay_rejected(uow=uow, operator_id=g.operator.user_id,
                                                  received_from=received_from, received_to=received_to,
                                                  limit=settings.console_bulk_replay_max)

            def enqueue_all() -> None:
                for event_id in replayed:
                    enqueue_webhook_event(celery, event_id)

            uow.on_commit(enqueue_all)
    except DBAPIError as exc:
        raise _refused(exc) from exc
    return redirect(url_for("console.inbox_page", state="rejected", window="all", notice="bulk_replayed",
                            count=len(replayed)), code=303)


# --- jobs -----------------------------------------------------------------------------------------------------

def _user_filter(value: str) -> tuple[str | None, str]:
    """A user given as an id or an exact email; returns (user id, what to show in the field)."""
    value = _bounded(value, "user", MAX_QUERY)
    if not value:
        return None, ""
    try:
        return str(uuid.UUID(value)), value
    except ValueError:
        pass
    with _service_uow() as uow:
        matches = [u for u in console_db.search_users(uow=uow, query=value, limit=2)
                   if (u["email"] or "").lower() == value.lower()]
    if not matches:
        raise ConsoleError(f"No user with email {value}", status=404, code="user_not_found")
    return matches[0]["id"], value


@bp.get("/jobs")
def jobs_page():
    status = _choice("status", console_db.RESULT_STATUSES)
    user_id, user_field = _user_filter(request.args.get("user", ""))
    stuck_after = services().settings.console_stuck_after_seconds
    with _service_uow() as uow:
        results = console_db.list_results(uow=uow, status=status, user_id=user_id)
        counts = console_db.result_counts(uow=uow, user_id=user_id)
        stuck = console_db.stuck_results(uow=uow, older_than_seconds=stuck_after)
        failed = console_db.failed_dispatches(uow=uow)
        dispatch = dispatch_health(uow=uow)
    return render_template("console/jobs.html", results=results, counts=counts, stuck=stuck, status=status,
                           user_field=user_field, statuses=console_db.RESULT_STATUSES, stuck_after=stuck_after,
                           failed=failed, dispatch=dispatch)


@bp.post("/jobs/<uuid:result_id>/cancel")
def cancel_job(result_id: uuid.UUID):
    reason = _reason(required=False) or "cancelled from the console"
    try:
        with _service_uow() as uow:
            cancelled = console_db.cancel_result(uow=uow, operator_id=g.operator.user_id, result_id=str(result_id),
                                                 reason=reason)
    except DBAPIError as exc:
        raise _refused(exc) from exc
    return redirect(url_for("console.jobs_page", notice="cancelled" if cancelled else "not_cancelled"), code=303)


@bp.post("/jobs/<uuid:result_id>/retry-dispatch")
def retry_dispatch(result_id: uuid.UUID):
    try:
        with _service_uow() as uow:
            retry = console_db.retry_dispatch(uow=uow, operator_id=g.operator.user_id, result_id=str(result_id))
    except DBAPIError as exc:
        raise _refused(exc) from exc
    notice = {"due_now": "dispatch_due_now", "resubmitted": "dispatch_resubmitted"}.get(retry.action,
                                                                                      "dispatch_not_retryable")
    return redirect(url_for("console.jobs_page", notice=notice), code=303)


@bp.post("/dispatch/enable")
def enable_dispatch():
    try:
        with _service_uow() as uow:
            console_db.reenable_dispatch(uow=uow, operator_id=g.operator.user_id)
    except DBAPIError as exc:
        raise _refused(exc) from exc
    return redirect(url_for("console.jobs_page", notice="dispatch_enabled"), code=303)


# --- users ----------------------------------------------------------------------------------------------------

@bp.get("/users")
def users_page():
    query = _bounded(request.args.get("q", ""), "q", MAX_QUERY)
    with _service_uow() as uow:
        users = console_db.search_users(uow=uow, query=query)
    return render_template("console/users.html", users=users, query=query)


def _user_page(user_id: str, *, error: ConsoleError | None = None, form: dict[str, str] | None = None):
    with _service_uow() as uow:
        user = console_db.get_user(uow=uow, user_id=user_id)
        if user is None:
            raise ConsoleError("No such user", status=404, code="user_not_found")
        grants = console_db.credit_history(uow=uow, user_id=user_id)
        results = console_db.list_results(uow=uow, status=None, user_id=user_id, limit=10)
        audit = console_db.list_audit(uow=uow, target_id=user_id, limit=20)
    body = render_template("console/user.html", user=user, grants=grants, results=results, audit=audit, error=error,
                           form=form or {})
    return Response(body, status=error.status if error else 200, mimetype="text/html")


@bp.get("/users/<uuid:user_id>")
def user_page(user_id: uuid.UUID):
    return _user_page(str(user_id))


@bp.post("/users/<uuid:user_id>/credits")
def change_credits(user_id: uuid.UUID):
    form = {"amount": request.form.get("amount", "")[:20], "reason": request.form.get("reason", "")[:MAX_REASON]}
    try:
        direction = request.form.get("direction")
        if direction not in ("grant", "revoke"):
            raise ConsoleError("Choose Grant credits or Revoke credits", status=400, code="validation_failed")
        try:
            amount = int(form["amount"].strip())
        except ValueError:
            amount = 0
        if not 1 <= amount <= MAX_CREDITS:
            raise ConsoleError(f"amount must be a whole number from 1 to {MAX_CREDITS}", status=400,
                               code="validation_failed")
        reason = _reason()
        try:
            with _service_uow() as uow:
                console_db.grant_credits(uow=uow, operator_id=g.operator.user_id, user_id=str(user_id),
                                         amount=amount if direction == "grant" else -amount, reason=reason)
        except DBAPIError as exc:
            raise _refused(exc) from exc
    except ConsoleError as exc:
        if exc.status == 404:
            raise
        return _user_page(str(user_id), error=exc, form=form)
    return redirect(url_for("console.user_page", user_id=user_id,
                            notice="granted" if direction == "grant" else "revoked"), code=303)


def _set_ban(user_id: uuid.UUID, banned: bool):
    reason = _reason(required=banned)
    try:
        with _service_uow() as uow:
            change = console_db.set_ban(uow=uow, operator_id=g.operator.user_id, user_id=str(user_id), banned=banned,
                                        reason=reason)
    except DBAPIError as exc:
        error = _refused(exc)
        if error.status == 404:
            raise error from exc
        return _user_page(str(user_id), error=error)
    for session_id in change.revoked_sessions:
        forget_session(session_id)  # this process stops trusting them at once; others within seconds
    notice = "unchanged" if not change.changed else ("banned" if banned else "unbanned")
    return redirect(url_for("console.user_page", user_id=user_id, notice=notice), code=303)


@bp.post("/users/<uuid:user_id>/ban")
def ban_user(user_id: uuid.UUID):
    return _set_ban(user_id, True)


@bp.post("/users/<uuid:user_id>/unban")
def unban_user(user_id: uuid.UUID):
    return _set_ban(user_id, False)


# --- audit log ------------------------------------------------------------------------------------------------

@bp.get("/audit")
def audit_page():
    target = _bounded(request.args.get("target", ""), "target", MAX_QUERY) or None
    before_id = _int_arg("before", 0, minimum=0) or None
    with _service_uow() as uow:
        rows = console_db.list_audit(uow=uow, target_id=target, before_id=before_id)
    older = rows[-1]["id"] if len(rows) == console_db.PAGE_SIZE else None
    return render_template("console/audit.html", rows=rows, target=target or "", older=older)
