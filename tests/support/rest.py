"""Data API helpers: seeding a user's projects and results; a stack over the library test schema."""
from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

import psycopg
from psycopg.types.json import Jsonb

from api.tokens import api_key
from db.urls import libpq_url
from tests.support.database import create_database, drop_database, make_test_settings, migrate_serialised
from tests.support.factories import TestUser
from tests.support.processes import ApiProcess

LIBRARY_SQL = Path(__file__).resolve().parents[1] / "rest" / "library.sql"


@dataclass
class Seeded:
    user: TestUser
    projects: list[str] = field(default_factory=list)
    results: list[str] = field(default_factory=list)
    usage: list[str] = field(default_factory=list)
    base: datetime | None = None  # results[i] was created at base + i minutes


def seed(settings, user: TestUser, *, results: int = 3, prompt_prefix: str = "cat") -> Seeded:
    """Two projects, `results` results (the newest first has a null text_prompt) and one usage row."""
    # recent, whole-second timestamps: old pending rows would look stuck to the pipeline's reconcile job
    base = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(minutes=30)
    data = Seeded(user, base=base)
    with psycopg.connect(libpq_url(settings.database_url), autocommit=True) as conn:
        with conn.transaction():
            conn.execute("set local session_replication_role = replica")
            for index in range(2):
                project_id = str(uuid.uuid4())
                conn.execute("insert into public.projects (id, user_id, name, description) values (%s, %s, %s, %s)",
                             (project_id, user.id, f"project {index}", None if index else "first"))
                data.projects.append(project_id)
            statuses = ["pending", "processing", "done", "error"]
            for index in range(results):
                result_id = str(uuid.uuid4())
                prompt = None if index == results - 1 else f"{prompt_prefix} {index}"
                conn.execute(
                    "insert into public.segmentation_results (id, user_id, project_id, source_image_url, "
                    "text_prompt, status, labels, metadata, created_at) values (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
                    (result_id, user.id, data.projects[index % 2], f"https://img.example/{result_id}.png", prompt,
                     statuses[index % 4], Jsonb([f"label{index}"]), Jsonb({"n": index}),
                     base + timedelta(minutes=index)))
                data.results.append(result_id)
            usage_id = str(uuid.uuid4())
            conn.execute("insert into public.usage_logs (id, user_id, action, credits_used) "
                         "values (%s, %s, 'segmentation', 1)", (usage_id, user.id))
            data.usage.append(usage_id)
    return data


@dataclass
class Library:
    """A live API over a database of its own holding tests/rest/library.sql (authors, books, genres, ...)."""

    settings: object
    api: object
    anon_key: str
    service_key: str

    @property
    def rest_url(self) -> str:
        return f"{self.api.url}/rest/v1"

    def headers(self, *, service: bool = False, **extra: str) -> dict[str, str]:
        key = self.service_key if service else self.anon_key
        return {"apikey": key, "Authorization": f"Bearer {key}", **extra}


@contextmanager
def library_stack(**overrides) -> Iterator[Library]:
    """Create, migrate and load the library database, start `segbase api` over it (REST_SCHEMAS=public,extra,
    aggregates on), and drop everything afterwards."""
    name = f"segbase_lib_{uuid.uuid4().hex[:10]}"
    url = create_database(name)
    api = None
    try:
        settings = make_test_settings(url, f"lib{uuid.uuid4().hex[:6]}", rest_schemas=["public", "extra"],
                                      rest_aggregates_enabled=True, **overrides)
        migrate_serialised(settings)
        with psycopg.connect(libpq_url(settings.database_url), autocommit=True) as conn:
            conn.execute(LIBRARY_SQL.read_text())
            conn.execute("notify pgrst, 'reload schema'")
        api = ApiProcess(settings).start()
        yield Library(settings, api, api_key(settings, "anon"), api_key(settings, "service_role"))
    finally:
        if api is not None:
            api.stop()
        drop_database(name)
