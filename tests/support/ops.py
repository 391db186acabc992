"""Operations helpers: results of a given age and status, and which of them still exist."""
from __future__ import annotations

from datetime import timedelta

import psycopg
from psycopg.types.json import Jsonb


def insert_result(conn: psycopg.Connection, user_id: str, status: str, age: timedelta,
                  updated_age: timedelta | None = None, metadata: dict | None = None) -> str:
    """A result created `age` ago (last touched `updated_age` ago, default the same)."""
    updated_age = age if updated_age is None else updated_age
    return str(conn.execute(
        "insert into public.segmentation_results (user_id, source_image_url, status, metadata, created_at, updated_at) "
        "values (%s, 'https://img.example/in.png', %s, %s, now() - %s, now() - %s) returning id",
        (user_id, status, Jsonb(metadata or {}), age, updated_age)).fetchone()[0])


def existing(conn: psycopg.Connection, ids: list[str]) -> set[str]:
    rows = conn.execute("select id::text from public.segmentation_results where id = any(%s::uuid[])", (ids,))
    return {row[0] for row in rows}
