"""SQL over `storage.buckets` and `storage.objects`, each function run inside the caller's unit of work, so RLS
decides what a caller sees and changes (Supabase Storage's model: supabase/storage src/storage/database/knex.ts).
Functions never commit; the bytes are the backends' business (db/storage/backends.py)."""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from db.uow import UnitOfWork

BUCKET_COLUMNS = ("id, name, owner, owner_id, public, type, file_size_limit, allowed_mime_types, "
                  "created_at, updated_at")
OBJECT_COLUMNS = ("id, bucket_id, name, owner, owner_id, version, metadata, user_metadata, created_at, "
                  "updated_at, last_accessed_at")
LIST_SORT_COLUMNS = {"name", "updated_at", "created_at", "last_accessed_at"}
BUCKET_SORT_COLUMNS = {"id", "name", "created_at", "updated_at"}


@dataclass(frozen=True)
class Bucket:
    id: str
    name: str
    owner: str | None
    owner_id: str | None
    public: bool
    type: str
    file_size_limit: int | None
    allowed_mime_types: list[str] | None
    created_at: datetime
    updated_at: datetime

    def as_json(self) -> dict[str, Any]:
        """The bucket as the clients parse it: `owner` is a string ("" when none), timestamps ISO 8601."""
        return {"id": self.id, "name": self.name, "owner": self.owner_id or self.owner or "",
                "public": bool(self.public), "type": self.type, "file_size_limit": self.file_size_limit,
                "allowed_mime_types": self.allowed_mime_types,
                "created_at": iso(self.created_at), "updated_at": iso(self.updated_at)}


@dataclass(frozen=True)
class StoredObject:
    id: str
    bucket_id: str
    name: str
    owner: str | None
    owner_id: str | None
    version: str | None
    metadata: dict[str, Any]
    user_metadata: dict[str, Any] | None
    created_at: datetime
    updated_at: datetime
    last_accessed_at: datetime | None

    @property
    def size(self) -> int:
        return int(self.metadata.get("size") or 0)

    @property
    def mimetype(self) -> str:
        return self.metadata.get("mimetype") or "application/octet-stream"

    @property
    def etag(self) -> str:
        return self.metadata.get("eTag") or f'"{self.version}"'

    def as_list_entry(self, name: str | None = None) -> dict[str, Any]:
        return {"name": name if name is not None else self.name, "id": self.id, "updated_at": iso(self.updated_at),
                "created_at": iso(self.created_at), "last_accessed_at": iso(self.last_accessed_at),
                "metadata": self.metadata}

    def as_row(self) -> dict[str, Any]:
        """The full row, as upstream's remove() returns it."""
        return {"bucket_id": self.bucket_id, "owner": self.owner_id or self.owner or "",
                "version": self.version, **self.as_list_entry(), "user_metadata": self.user_metadata}

    def as_info(self) -> dict[str, Any]:
        """`GET /object/info/...`: upstream's ObjectInfo (Flutter requires id, version, name, bucket_id, created_at)."""
        return {"id": self.id, "name": self.name, "version": self.version or "", "bucket_id": self.bucket_id,
                "size": self.size, "content_type": self.mimetype,
                "cache_control": self.metadata.get("cacheControl"), "etag": self.etag,
                "metadata": self.user_metadata or {}, "last_modified": self.metadata.get("lastModified")
                or iso(self.updated_at), "created_at": iso(self.created_at)}


def iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    return value.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _bucket(row) -> Bucket:
    values = dict(row._mapping)
    values["owner"] = str(values["owner"]) if values["owner"] else None
    values["type"] = str(values["type"])
    return Bucket(**values)


def _object(row) -> StoredObject:
    values = dict(row._mapping)
    values["id"] = str(values["id"])
    values["owner"] = str(values["owner"]) if values["owner"] else None
    values["metadata"] = values["metadata"] or {}
    return StoredObject(**values)


# --- buckets ----------------------------------------------------------------------------------------------------

def get_bucket(uow: UnitOfWork, bucket_id: str) -> Bucket | None:
    return read_bucket(send_bucket_query(uow, bucket_id))


def send_bucket_query(uow: UnitOfWork, bucket_id: str) -> psycopg.Cursor:
    """Ask for the bucket's row; `read_bucket` reads the answer (in a pipelined unit of work, once it is over)."""
    cursor = uow.driver_cursor(row_factory=dict_row)
    cursor.execute(f"select {BUCKET_COLUMNS} from storage.buckets where id = %(id)s", {"id": bucket_id})
    return cursor


def read_bucket(cursor: psycopg.Cursor) -> Bucket | None:
    row = cursor.fetchone()
    return _bucket(_Row(row)) if row else None


def list_buckets(uow: UnitOfWork, *, limit: int | None = None, offset: int = 0, search: str | None = None,
                 sort_column: str = "name", sort_order: str = "asc") -> list[Bucket]:
    column = sort_column if sort_column in BUCKET_SORT_COLUMNS else "name"
    order = sql.SQL("desc") if sort_order == "desc" else sql.SQL("asc")
    query = sql.SQL("select {columns} from storage.buckets where (%(search)s::text is null "
                    "or name ilike '%%' || %(search)s || '%%') order by {column} {order}, id "
                    "limit %(limit)s offset %(offset)s").format(
        columns=sql.SQL(BUCKET_COLUMNS), column=sql.Identifier(column), order=order)
    cursor = uow.driver_cursor()
    cursor.execute(query, {"search": _like_literal(search) if search else None, "limit": limit, "offset": offset})
    names = [d.name for d in cursor.description]
    return [_bucket(_Row(dict(zip(names, values)))) for values in cursor.fetchall()]


def create_bucket(uow: UnitOfWork, *, bucket_id: str, name: str, public: bool, file_size_limit: int | None,
                  allowed_mime_types: list[str] | None, owner: str | None) -> None:
    uow.execute("insert into storage.buckets (id, name, public, file_size_limit, allowed_mime_types, owner, owner_id) "
                "values (:id, :name, :public, :limit, :types, :owner, :owner_id)",
                {"id": bucket_id, "name": name, "public": public, "limit": file_size_limit,
                 "types": allowed_mime_types, "owner": owner, "owner_id": owner})


def update_bucket(uow: UnitOfWork, bucket_id: str, changes: dict[str, Any]) -> bool:
    """Apply `changes` (public, file_size_limit, allowed_mime_types); False when no visible bucket matched."""
    allowed = {key: value for key, value in changes.items()
               if key in ("public", "file_size_limit", "allowed_mime_types")}
    assignments = sql.SQL(", ").join(
        [sql.SQL("{} = {}").format(sql.Identifier(key), sql.Placeholder(key)) for key in allowed]
        + [sql.SQL("updated_at = now()")])
    cursor = uow.driver_cursor()
    cursor.execute(sql.SQL("update storage.buckets set {} where id = %(bucket_id)s returning id").format(assignments),
                   {**allowed, "bucket_id": bucket_id})
    return cursor.fetchone() is not None


def delete_bucket(uow: UnitOfWork, bucket_id: str) -> bool:
    return uow.execute("delete from storage.buckets where id = :id returning id", {"id": bucket_id}).first() is not None


def bucket_has_objects(uow: UnitOfWork, bucket_id: str) -> bool:
    return uow.execute("select exists (select 1 from storage.objects where bucket_id = :id)",
                       {"id": bucket_id}).scalar()


def empty_bucket(uow: UnitOfWork, bucket_id: str) -> int:
    """Delete every object of the bucket the caller may delete (RLS); their blobs go to the janitor's queue."""
    return uow.execute("delete from storage.objects where bucket_id = :id", {"id": bucket_id}).rowcount


# --- objects ----------------------------------------------------------------------------------------------------

def find_object(uow: UnitOfWork, bucket_id: str, name: str, *, for_update: bool = False) -> StoredObject | None:
    return read_object(send_find_object(uow, bucket_id, name, for_update=for_update))


def send_find_object(uow: UnitOfWork, bucket_id: str, name: str, *, for_update: bool = False) -> psycopg.Cursor:
    """Ask for the object's row; `read_object` reads the answer (in a pipelined unit of work, once it is over)."""
    lock = " for update" if for_update else ""
    cursor = uow.driver_cursor(row_factory=dict_row)
    cursor.execute(f"select {OBJECT_COLUMNS} from storage.objects where bucket_id = %(bucket)s and name = %(name)s"
                   f"{lock}", {"bucket": bucket_id, "name": name})
    return cursor


def read_object(cursor: psycopg.Cursor) -> StoredObject | None:
    row = cursor.fetchone()
    return _object(_Row(row)) if row else None


def upload_precheck(uow: UnitOfWork, *, bucket_id: str, name: str, owner: str | None, upsert: bool) -> None:
    """Ask PostgreSQL whether the caller may create (or, with upsert, replace) this object, before any byte is
    streamed: the insert runs in a savepoint that is always rolled back (Supabase's `canUpload`). Through the
    driver's cursor, so it can go in a pipelined unit of work."""
    cursor = uow.driver_cursor()
    cursor.execute("savepoint upload_precheck")
    try:
        _send_write_row(cursor, bucket_id=bucket_id, name=name, version=None, owner=owner, metadata={},
                        user_metadata=None, upsert=upsert)
    finally:
        cursor.execute("rollback to savepoint upload_precheck")


def _send_write_row(cursor: psycopg.Cursor, *, bucket_id: str, name: str, version: str | None, owner: str | None,
                    metadata: dict[str, Any], user_metadata: dict[str, Any] | None, upsert: bool) -> None:
    conflict = ("on conflict (bucket_id, name) do update set version = excluded.version, owner = excluded.owner, "
                "owner_id = excluded.owner_id, metadata = excluded.metadata, user_metadata = excluded.user_metadata, "
                "updated_at = now(), last_accessed_at = now()") if upsert else ""
    cursor.execute(
        "insert into storage.objects (bucket_id, name, owner, owner_id, version, metadata, user_metadata) "
        "values (%(bucket)s, %(name)s, %(owner)s, %(owner_id)s, %(version)s, cast(%(metadata)s as jsonb), "
        f"cast(%(user_metadata)s as jsonb)) {conflict} returning {OBJECT_COLUMNS}",
        {"bucket": bucket_id, "name": name, "owner": owner, "owner_id": owner, "version": version,
         "metadata": json.dumps(metadata),
         "user_metadata": json.dumps(user_metadata) if user_metadata is not None else None})


def write_object(uow: UnitOfWork, *, bucket_id: str, name: str, version: str, owner: str | None,
                 metadata: dict[str, Any], user_metadata: dict[str, Any] | None, upsert: bool) -> StoredObject:
    """Insert the object row pointing at blob `version` (with upsert: replace the existing row's blob)."""
    written = read_object(send_write_object(uow, bucket_id=bucket_id, name=name, version=version, owner=owner,
                                            metadata=metadata, user_metadata=user_metadata, upsert=upsert))
    assert written is not None, "an insert … returning gives its row"
    return written


def send_write_object(uow: UnitOfWork, *, bucket_id: str, name: str, version: str, owner: str | None,
                      metadata: dict[str, Any], user_metadata: dict[str, Any] | None, upsert: bool) -> psycopg.Cursor:
    """write_object's statement; `read_object` reads the row written (in a pipelined unit of work, once it is
    over)."""
    cursor = uow.driver_cursor(row_factory=dict_row)
    _send_write_row(cursor, bucket_id=bucket_id, name=name, version=version, owner=owner, metadata=metadata,
                    user_metadata=user_metadata, upsert=upsert)
    return cursor


def delete_objects(uow: UnitOfWork, bucket_id: str, names: list[str]) -> list[StoredObject]:
    """Delete the named objects the caller may delete; return the deleted rows."""
    rows = uow.execute(f"delete from storage.objects where bucket_id = :bucket and name = any(:names) "
                       f"returning {OBJECT_COLUMNS}", {"bucket": bucket_id, "names": names}).all()
    return [_object(row) for row in rows]


def move_object(uow: UnitOfWork, *, bucket_id: str, source: str, target_bucket: str,
                target: str) -> StoredObject | None:
    """Rename an object (its blob stays); None when the caller cannot see or update the source."""
    row = uow.execute(f"update storage.objects set bucket_id = :target_bucket, name = :target, updated_at = now() "
                      f"where bucket_id = :bucket and name = :source returning {OBJECT_COLUMNS}",
                      {"bucket": bucket_id, "source": source, "target_bucket": target_bucket,
                       "target": target}).first()
    return _object(row) if row else None


def mark_copy(uow: UnitOfWork) -> None:
    """Tell the usage trigger this transaction's new row is a copy, not an upload (Supabase's `storage.operation`)."""
    uow.execute("select set_config('storage.operation', 'storage.object.copy', true)")


def list_folder(uow: UnitOfWork, *, bucket_id: str, prefix: str, search: str | None, limit: int, offset: int,
                sort_column: str, sort_order: str) -> list[dict[str, Any]]:
    """One level of a folder, as storage's `list()`: files directly under `prefix` and one row per sub-folder
    (`id` null), names relative to the prefix, `search` a case-insensitive name prefix, at most `limit` rows."""
    column = sort_column if sort_column in LIST_SORT_COLUMNS else "name"
    descending = sort_order == "desc"
    entry_filter = "and lower(entry) like lower(:search) || '%' escape '\\'" if search else ""
    bounds = "and o.name collate \"C\" >= :low and o.name collate \"C\" < :high" if prefix else ""
    rows = uow.execute(
        f"""
        with entries as (
          select split_part(substr(o.name, :skip), '/', 1) as entry,
                 strpos(substr(o.name, :skip), '/') > 0 as is_folder, o.*
            from storage.objects o
           where o.bucket_id = :bucket {bounds}
        ), listed as (
          select entry as name, null::uuid as id, null::timestamptz as updated_at, null::timestamptz as created_at,
                 null::timestamptz as last_accessed_at, null::jsonb as metadata, 0 as kind
            from entries where is_folder {entry_filter} group by entry
          union all
          select entry, id, updated_at, created_at, last_accessed_at, metadata, 1
            from entries where not is_folder {entry_filter}
        )
        select name, id, updated_at, created_at, last_accessed_at, metadata from listed
        """ + _list_order(column, descending) + " limit :limit offset :offset",
        {"bucket": bucket_id, "skip": len(prefix) + 1, "low": prefix, "high": _prefix_upper_bound(prefix),
         "search": _like_literal(search) if search else None, "limit": limit, "offset": offset}).all()
    return [{"name": row.name, "id": str(row.id) if row.id else None, "updated_at": iso(row.updated_at),
             "created_at": iso(row.created_at), "last_accessed_at": iso(row.last_accessed_at),
             "metadata": row.metadata} for row in rows]


def _list_order(column: str, descending: bool) -> str:
    direction = "desc" if descending else "asc"
    if column == "name":  # case-insensitive, byte order otherwise (upstream: lower(name) collate "C")
        return f" order by lower(name) collate \"C\" {direction}, name collate \"C\" {direction}"
    # other columns: folders first, then files by the column (a fixed whitelist, never client text)
    return f" order by kind, {column} {direction} nulls last, lower(name) collate \"C\""


def _prefix_upper_bound(prefix: str) -> str:
    """The least string above every string starting with `prefix` (in "C" order): its last character + 1."""
    if not prefix:
        return ""
    return prefix[:-1] + chr(ord(prefix[-1]) + 1)


def _like_literal(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


# --- plumbing ---------------------------------------------------------------------------------------------------

class _Row:
    def __init__(self, mapping: dict[str, Any]) -> None:
        self._mapping = mapping
