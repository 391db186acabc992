-- Why: the `storage` schema every Supabase project has (Supabase Storage's tables in their column shape, and the
-- helper functions its RLS policies use), owned by `supabase_storage_admin` as on Supabase. Created only where
-- missing, so a Supabase database is left as it is. RLS is on with no policy: nobody but service_role reads or
-- writes a bucket or an object until a migration grants it with a policy.
-- Shape: supabase/storage migrations/tenant/0002-storage-schema.sql and later (0008, 0013, 0016, 0025, 0038, 0062).
do $$
begin
  if not exists (select from pg_roles where rolname = 'supabase_storage_admin') then
    create role supabase_storage_admin nologin noinherit createrole;
  end if;
end
$$;

create schema if not exists storage;
do $$
begin
  if (select nspowner from pg_namespace where nspname = 'storage') = (select oid from pg_roles where rolname = current_user) then
    alter schema storage owner to supabase_storage_admin;
  end if;
end
$$;
grant usage on schema storage to anon, authenticated, service_role;

do $$
begin
  create type storage.buckettype as enum ('STANDARD', 'ANALYTICS', 'VECTOR');
exception when duplicate_object then null;
end
$$;

create table if not exists storage.buckets (
  id text primary key,
  name text not null,
  owner uuid,
  created_at timestamptz default now(),
  updated_at timestamptz default now(),
  public boolean default false,
  avif_autodetection boolean default false,
  file_size_limit bigint,
  allowed_mime_types text[],
  owner_id text,
  type storage.buckettype not null default 'STANDARD'
);
comment on column storage.buckets.owner is 'Field is deprecated, use owner_id instead';
create unique index if not exists bname on storage.buckets (name);

create table if not exists storage.objects (
  id uuid primary key default gen_random_uuid(),
  bucket_id text references storage.buckets (id),
  name text,
  owner uuid,
  created_at timestamptz default now(),
  updated_at timestamptz default now(),
  last_accessed_at timestamptz default now(),
  metadata jsonb,
  path_tokens text[] generated always as (string_to_array(name, '/')) stored,
  version text,
  owner_id text,
  user_metadata jsonb
);
comment on column storage.objects.owner is 'Field is deprecated, use owner_id instead';
create unique index if not exists bucketid_objname on storage.objects (bucket_id, name);
create index if not exists name_prefix_search on storage.objects (name text_pattern_ops);
-- Listing a folder (`bucket_id = $1 and name like 'prefix%'`) walks this index in name order.
create index if not exists idx_objects_bucket_id_name on storage.objects (bucket_id, name collate "C");

do $$
begin
  if (select relowner from pg_class where oid = 'storage.objects'::regclass) = (select oid from pg_roles where rolname = current_user) then
    alter table storage.buckets owner to supabase_storage_admin;
    alter table storage.objects owner to supabase_storage_admin;
    alter type storage.buckettype owner to supabase_storage_admin;
  end if;
end
$$;

alter table storage.buckets enable row level security;
alter table storage.objects enable row level security;
-- As on Supabase: the API roles hold the table privileges, RLS policies decide which rows. Not TRUNCATE (which RLS
-- does not filter), REFERENCES or TRIGGER for clients: the bootstrap runs on every migrate, so granting them here
-- would undo the migration that takes them back.
grant select, insert, update, delete on storage.buckets, storage.objects to anon, authenticated;
grant all on storage.buckets, storage.objects to service_role;

-- The helpers Supabase's documented policies call (IMMUTABLE since supabase/storage 0060/0061).
do $$
begin
  if to_regprocedure('storage.foldername(text)') is null then
    create function storage.foldername(name text) returns text[] language plpgsql immutable as $fn$
    declare
      _parts text[];
    begin
      select string_to_array(name, '/') into _parts;
      return _parts[1 : array_length(_parts, 1) - 1];
    end
    $fn$;
    alter function storage.foldername(text) owner to supabase_storage_admin;
  end if;
  if to_regprocedure('storage.filename(text)') is null then
    create function storage.filename(name text) returns text language plpgsql immutable as $fn$
    declare
      _parts text[];
    begin
      select string_to_array(name, '/') into _parts;
      return _parts[array_length(_parts, 1)];
    end
    $fn$;
    alter function storage.filename(text) owner to supabase_storage_admin;
  end if;
  if to_regprocedure('storage.extension(text)') is null then
    create function storage.extension(name text) returns text language plpgsql immutable as $fn$
    declare
      _parts text[];
      _filename text;
    begin
      select string_to_array(name, '/') into _parts;
      select _parts[array_length(_parts, 1)] into _filename;
      return reverse(split_part(reverse(_filename), '.', 1));
    end
    $fn$;
    alter function storage.extension(text) owner to supabase_storage_admin;
  end if;
end
$$;
grant execute on function storage.foldername(text), storage.filename(text), storage.extension(text)
  to anon, authenticated, service_role;
