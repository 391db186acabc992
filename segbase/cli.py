"""`segbase` — one subcommand per process an operator runs.

Each subcommand imports its own process's code inside its function ("lazy" below): `segbase migrate` must not
import gevent or Celery, and a metrics-serving process must choose prometheus-client's multiprocess directory
before prometheus-client is first imported.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence

from schemas.settings import Settings


def cmd_migrate(settings: Settings, args: argparse.Namespace) -> int:
    from db.migrate import (  # lazy: see the module docstring
        MigrationError,
        migrate,
        migration_status,
        new_migration,
        rotate_authenticator_password,
    )

    try:
        if args.action == "new":
            if not args.description:
                print("usage: segbase migrate new <description>", file=sys.stderr)
                return 2
            print(new_migration(" ".join(args.description)))
            return 0
        if args.status:
            status = migration_status(settings)
            print(json.dumps({"applied": status.applied, "pending": status.pending, "current": status.current}))
            return 0
        applied = migrate(settings)
        print(f"migrations up to date ({len(applied)} applied now)")
        if getattr(args, "rotate_authenticator_password", False):
            rotate_authenticator_password(settings)
            print("authenticator password set from DB_AUTHENTICATOR_PASSWORD; restart the processes still using "
                  "the old one (new connections need the new one)")
        return 0
    except MigrationError as exc:
        print(f"segbase migrate: {exc}", file=sys.stderr)
        return 1


def authenticator_login_refused(settings: Settings, *, in_child: bool = False) -> bool:
    """Say so and return True when PostgreSQL refuses DB_AUTHENTICATOR_PASSWORD: a process that cannot log in
    stops at start with the setting's name, instead of serving errors from every request. `in_child` checks from a
    child process, for the API's gunicorn master: psycopg chooses how to wait when it is first imported, so it
    must be imported only in the workers, after gevent patched them."""
    if in_child:
        env = {**os.environ, **settings.to_env(), "SEGBASE_ENV_FILE": ""}
        check = subprocess.run([sys.executable, "-m", "segbase.preflight", "--authenticator-login"], env=env,
                               capture_output=True, text=True)
        if check.returncode:
            print(check.stderr.strip(), file=sys.stderr)
        return check.returncode != 0
    from segbase.preflight import (
        check_authenticator_login,  # lazy: see the module docstring
    )

    problem = check_authenticator_login(settings)
    if problem:
        print(f"segbase: {problem}", file=sys.stderr)
    return problem is not None


def port_taken(settings: Settings, port: int | None) -> bool:
    """Say so (one line) and return True when the API's port is taken: checked before anything starts."""
    from segbase.ports import (
        port_problem,  # lazy: see the module docstring (no psycopg in the API's master)
    )

    problem = port_problem(settings.api_host, settings.api_port if port is None else port)
    if problem:
        print(f"segbase: {problem}", file=sys.stderr)
    return problem is not None


def cmd_api(settings: Settings, args: argparse.Namespace) -> int:
    if port_taken(settings, args.port):
        return 1
    if authenticator_login_refused(settings, in_child=True):
        return 1
    from segbase.server import run_api  # lazy: see the module docstring

    run_api(settings, port=args.port)
    return 0


def serve_process_metrics(settings: Settings, process: str, port: int) -> None:
    """Multiprocess metrics directory first (before prometheus-client is imported), then the process's endpoint."""
    from observability.metrics_dir import (
        prepare_multiprocess_dir,  # lazy: see the module docstring
    )

    prepare_multiprocess_dir(process, settings.instance_id)
    from observability.metrics import (  # lazy: see the module docstring
        install_celery_metrics,
        start_metrics_server,
    )

    if process == "worker":
        install_celery_metrics()
    start_metrics_server(port, process, settings.metrics_bind_address)


def cmd_worker(settings: Settings, args: argparse.Namespace) -> int:
    if authenticator_login_refused(settings):
        return 1
    serve_process_metrics(settings, "worker", settings.worker_metrics_port)
    from workers.main import run_worker  # lazy: see the module docstring

    return run_worker(settings, concurrency=args.concurrency)


def cmd_worker_ping(settings: Settings, args: argparse.Namespace) -> int:
    """Exit 0 when a worker of this deployment answers Celery's `inspect ping` (container healthchecks)."""
    from broker.celery_app import create_celery  # lazy: see the module docstring

    replies = create_celery(settings).control.inspect(timeout=args.timeout).ping() or {}
    print(json.dumps(replies))
    return 0 if replies else 1


def cmd_beat(settings: Settings, args: argparse.Namespace) -> int:
    if authenticator_login_refused(settings):
        return 1
    from workers.main import run_beat  # lazy: see the module docstring

    return run_beat(settings)


def cmd_relay(settings: Settings, args: argparse.Namespace) -> int:
    if authenticator_login_refused(settings):
        return 1
    serve_process_metrics(settings, "relay", settings.relay_metrics_port)
    from workers.relay import run_relay  # lazy: see the module docstring

    return run_relay(settings)


def cmd_status(settings: Settings, args: argparse.Namespace) -> int:
    from segbase.status import (  # lazy: see the module docstring
        OVERRIDABLE,
        api_running,
        collect_status,
        render_env,
        render_json,
        render_pretty,
        running_line,
        supabase_values,
    )

    overrides = {}
    for item in args.override_name:
        key, _, name = item.partition("=")
        if key not in OVERRIDABLE or not name:
            print(f"segbase status: --override-name takes KEY=NAME with KEY one of {', '.join(OVERRIDABLE)}",
                  file=sys.stderr)
            return 2
        overrides[key] = name
    status = collect_status(settings)
    if args.json:  # the older lower-case keys, kept for scripts that read them; always exits 0
        print(json.dumps(status, indent=2))
        return 0
    running = api_running(settings)
    values = supabase_values(settings, status, overrides)
    if args.output == "pretty":
        print(render_pretty(settings, status, values, running), end="")
    else:
        print(render_env(values) if args.output == "env" else render_json(values))
        if not running:
            print(running_line(settings, running), file=sys.stderr)
    return 0 if running else 1


def cmd_operator(settings: Settings, args: argparse.Namespace) -> int:
    """Grant or revoke the console operator role (app_metadata.segbase_role), audited as the CLI."""
    from sqlalchemy.exc import DBAPIError  # lazy: see the module docstring

    from db import console as console_db  # lazy: see the module docstring
    from db.engine import create_app_engine  # lazy: see the module docstring
    from db.uow import Caller, unit_of_work  # lazy: see the module docstring

    engine = create_app_engine(settings, pool_size=1, application_name="segbase-operator")
    try:
        with unit_of_work(engine, Caller.service()) as uow:
            change = console_db.set_operator_role(uow=uow, email=args.email, operator=args.action == "grant")
    except DBAPIError as exc:
        refusal = console_db.refusal(exc)
        if refusal is None:
            raise
        print(f"segbase operator: {refusal.message} (sign up first, then grant)", file=sys.stderr)
        return 1
    finally:
        engine.dispose()
    email = args.email.strip().lower()
    if not change.changed:
        print(f"{email} {'is already' if args.action == 'grant' else 'is not'} an operator; nothing changed")
    elif args.action == "grant":
        print(f"{email} is now an operator: sign in at {settings.console_url}")
    else:
        print(f"{email} is no longer an operator (their console requests are refused from now on)")
    return 0


def cmd_demo_backend(settings: Settings, args: argparse.Namespace) -> int:
    from segbase.demo_backend import run_demo_backend  # lazy: see the module docstring

    return run_demo_backend(settings)


def cmd_mailcatcher(settings: Settings, args: argparse.Namespace) -> int:
    from segbase.mailcatcher import run_mailcatcher  # lazy: see the module docstring

    return run_mailcatcher(settings)


def cmd_dispatch(settings: Settings, args: argparse.Namespace) -> int:
    """Operator actions on job dispatch: re-enable after a 410, cancel a job, retry a failed dispatch."""
    import uuid  # lazy: see the module docstring

    from db import dispatch  # lazy: see the module docstring
    from db.engine import create_app_engine  # lazy: see the module docstring
    from db.uow import Caller, unit_of_work  # lazy: see the module docstring

    if args.action in ("cancel", "retry"):
        try:
            job_id = str(uuid.UUID(args.job_id or ""))
        except ValueError:
            print(f"segbase dispatch {args.action}: give the job id (a segmentation result id)", file=sys.stderr)
            return 2
    engine = create_app_engine(settings, pool_size=1, application_name="segbase-dispatch-cli")
    try:
        with unit_of_work(engine, Caller.service()) as uow:
            if args.action == "enable":
                was_disabled = dispatch.enable_dispatch(uow=uow)
                print("dispatch re-enabled; queued jobs resume" if was_disabled
                      else "dispatch was enabled; circuit breaker and pauses reset")
            elif args.action == "cancel":
                print(json.dumps({"job_id": job_id, "outcome": dispatch.cancel_job(uow=uow, job_id=job_id)}))
            else:
                outcome = dispatch.retry_job(uow=uow, job_id=job_id)
                print(json.dumps({"job_id": job_id, "action": outcome.action, "new_job_id": outcome.job_id}))
    finally:
        engine.dispose()
    return 0


RUN_PROCESSES = ("api", "worker", "beat", "relay")


def cmd_run(settings: Settings, args: argparse.Namespace) -> int:
    """Migrate, then run api, worker, beat and relay (and the demo backend when DEMO_BACKEND_ENABLED) in the
    foreground with prefixed logs; Ctrl-C stops all."""
    if port_taken(settings, None):
        return 1
    code = cmd_migrate(settings, argparse.Namespace(action=None, description=[], status=False))
    if code:
        return code
    env = {**os.environ, **settings.to_env()}
    children: dict[str, subprocess.Popen] = {}
    from segbase.mailcatcher import catcher_url  # lazy: see the module docstring

    mail_url = catcher_url(settings)
    processes = RUN_PROCESSES + (("demo-backend",) if settings.demo_backend_enabled else ()) + (
        ("mailcatcher",) if mail_url else ())
    for name in processes:
        # Each child in its own session: Ctrl-C reaches only this process, which then stops every child with
        # SIGTERM — the graceful stop (gunicorn finishes requests, Celery its tasks) rather than each child's
        # own SIGINT handling (gunicorn's quick exit).
        children[name] = subprocess.Popen([sys.executable, "-m", "segbase", name], env=env,
                                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1,
                                          start_new_session=True)

    def pump(name: str, stream) -> None:
        label = {"demo-backend": "demo", "mailcatcher": "mail"}.get(name, name)
        for line in stream:
            sys.stdout.write(f"{label:>6} | {line}")
            sys.stdout.flush()

    pumps = [threading.Thread(target=pump, args=(n, p.stdout), daemon=True) for n, p in children.items()]
    for thread in pumps:
        thread.start()
    from api.tokens import api_key  # lazy: see the module docstring

    print(f"   run | segbase: API {settings.public_url}  (Ctrl-C stops everything)\n"
          f"   run |   anon key:        {api_key(settings, 'anon')}\n"
          f"   run |   webhook:         POST {settings.public_url}/functions/v1/process-webhook (X-API-Key)\n"
          f"   run |   realtime:        {settings.public_url.replace('http', 'ws', 1)}/realtime/v1/websocket\n"
          f"   run |   console:         {settings.console_url}  (segbase operator grant EMAIL)\n"
          f"   run |   auth mails:      {mail_url or f'sent through {settings.smtp_host}:{settings.smtp_port}'}\n"
          f"   run |   all keys:        .venv/bin/segbase status", flush=True)

    stopping = threading.Event()

    def stop(*_: object) -> None:
        stopping.set()

    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):  # SIGHUP: the terminal went away
        signal.signal(signum, stop)
    exit_code = 0
    while not stopping.is_set():
        for name, child in children.items():
            if child.poll() is not None:
                print(f"   run | {name} exited with {child.returncode}; stopping the rest", flush=True)
                exit_code = child.returncode or 1
                stopping.set()
                break
        stopping.wait(0.5)
    for child in children.values():
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + settings.api_graceful_timeout_seconds + 5
    for child in children.values():
        try:
            child.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.kill()
    for thread in pumps:
        thread.join(timeout=1)
    return exit_code


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="segbase", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    migrate = sub.add_parser("migrate", help="apply db/bootstrap and pending db/migrations")
    migrate.add_argument("action", nargs="?", choices=["new"], help="`new <description>` creates a migration file")
    migrate.add_argument("description", nargs="*")
    migrate.add_argument("--status", action="store_true", help="print applied and pending versions as JSON")
    migrate.add_argument("--rotate-authenticator-password", action="store_true",
                         help="also set the cluster-wide authenticator role's password to DB_AUTHENTICATOR_PASSWORD "
                              "(otherwise it is set only when the role is created)")
    migrate.set_defaults(func=cmd_migrate)

    api = sub.add_parser("api", help="the HTTP + WebSocket API (gunicorn, gevent workers)")
    api.add_argument("--port", type=int, default=None)
    api.set_defaults(func=cmd_api)

    worker = sub.add_parser("worker", help="a Celery worker")
    worker.add_argument("--concurrency", type=int, default=None)
    worker.set_defaults(func=cmd_worker)

    ping = sub.add_parser("worker-ping", help="exit 0 if a worker answers Celery's inspect ping")
    ping.add_argument("--timeout", type=float, default=5.0)
    ping.set_defaults(func=cmd_worker_ping)

    sub.add_parser("beat", help="the periodic-job scheduler (run one per deployment)").set_defaults(func=cmd_beat)
    sub.add_parser("relay", help="publish committed outbox events to Redis").set_defaults(func=cmd_relay)
    sub.add_parser("run", help="migrate, then api + worker + beat + relay in the foreground").set_defaults(
        func=cmd_run)

    sub.add_parser("mailcatcher", help="a development SMTP server showing the auth mails over HTTP"
                   ).set_defaults(func=cmd_mailcatcher)
    sub.add_parser("demo-backend", help="a reference inference backend (its model is a stand-in: thresholding)"
                   ).set_defaults(func=cmd_demo_backend)

    dispatch = sub.add_parser("dispatch", help="operator actions on job dispatch")
    dispatch.add_argument("action", choices=["enable", "cancel", "retry"],
                          help="enable: resume push after a 410; cancel JOB_ID; retry JOB_ID (a failed dispatch)")
    dispatch.add_argument("job_id", nargs="?")
    dispatch.set_defaults(func=cmd_dispatch)

    operator = sub.add_parser("operator", help="grant or revoke the console operator role of a user")
    operator.add_argument("action", choices=["grant", "revoke"])
    operator.add_argument("email")
    operator.set_defaults(func=cmd_operator)

    status = sub.add_parser("status", help="URLs, keys and pipeline health, like `supabase status`")
    status.add_argument("-o", "--output", choices=["pretty", "env", "json"], default="pretty",
                        help="pretty (default), env (KEY=\"value\" lines) or json, with supabase status's names")
    status.add_argument("--override-name", action="append", default=[], metavar="KEY=NAME",
                        help="rename a variable, e.g. api.url=NEXT_PUBLIC_SUPABASE_URL (as supabase status does)")
    status.add_argument("--json", action="store_true",
                        help="the older lower-case keys (api_url, anon_key, …) and the health figures")
    status.set_defaults(func=cmd_status)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from observability.logs import configure_logging  # lazy: see the module docstring

    try:
        # SEGBASE_ENV_FILE="" disables the .env file (test processes get every setting from their environment).
        settings = Settings(_env_file=os.environ.get("SEGBASE_ENV_FILE", ".env") or None)
    except ValueError as exc:
        print(f"segbase: invalid settings: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level)
    return int(args.func(settings, args) or 0)
