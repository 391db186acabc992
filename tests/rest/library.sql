-- A small schema for the data API's embedding and grammar tests (loaded as the owner into a database of its own).
create table public.authors (
  id int primary key,
  name text not null,
  mentor_id int references public.authors (id),
  born date
);
create table public.author_profiles (
  author_id int primary key references public.authors (id),
  bio text
);
create table public.books (
  id int primary key,
  title text not null,
  author_id int not null references public.authors (id),
  editor_id int references public.authors (id),
  meta jsonb,
  tags text[] not null default '{}',
  pages int4range,
  secret boolean not null default false,
  summary text
);
create table public.genres (id int primary key, name text not null);
create table public.book_genres (
  book_id int references public.books (id),
  genre_id int references public.genres (id),
  primary key (book_id, genre_id)
);
create table public.loans (
  id serial primary key,
  book_id int references public.books (id),
  borrower text
);

-- a computed field and a computed relationship
create function public.shout(public.books) returns text language sql stable as $$ select upper($1.title) $$;
create function public.first_book(public.authors) returns setof public.books rows 1 language sql stable as
  $$ select * from public.books where author_id = $1.id order by id limit 1 $$;

-- functions for RPC tests
create function public.books_of(author int) returns setof public.books language sql stable as
  $$ select * from public.books where author_id = author $$;
create function public.book_counts() returns table (author int, n bigint) language sql stable as
  $$ select author_id, count(*) from public.books group by author_id order by author_id $$;
create function public.title_of(book public.books) returns text language sql stable as $$ select book.title $$;
create function public.echo(json) returns json language sql immutable as $$ select $1 $$;
create function public.pick(v int) returns text language sql immutable as $$ select 'int' $$;
create function public.pick(v text) returns text language sql immutable as $$ select 'text' $$;
create function public.add_loan(book int, who text) returns setof public.loans language sql volatile as
  $$ insert into public.loans (book_id, borrower) values (book, who) returning * $$;

alter table public.authors enable row level security;
alter table public.author_profiles enable row level security;
alter table public.books enable row level security;
alter table public.genres enable row level security;
alter table public.book_genres enable row level security;
alter table public.loans enable row level security;
create policy read_all on public.authors for select using (true);
create policy read_all on public.author_profiles for select using (true);
create policy read_public on public.books for select using (not secret or auth.role() = 'service_role');
create policy read_all on public.genres for select using (true);
create policy read_all on public.book_genres for select using (true);
create policy everything on public.loans using (true) with check (true);
grant select on all tables in schema public to anon, authenticated;
grant insert, update, delete on public.loans, public.authors to anon, authenticated;
create policy write_authors on public.authors for insert with check (true);
grant usage on all sequences in schema public to anon, authenticated;

create schema extra;
create table extra.notes (id int primary key, body text);
alter table extra.notes enable row level security;
create policy read_all on extra.notes for select using (true);
grant usage on schema extra to anon, authenticated, service_role;
grant select on extra.notes to anon, authenticated;

insert into public.authors values
  (1, 'Ursula', null, '1929-10-21'), (2, 'Octavia', 1, '1947-06-22'), (3, 'Iain', 1, '1954-02-16'), (4, 'Nobody', null, null);
insert into public.author_profiles values (1, 'Earthsea'), (2, 'Parable');
insert into public.books (id, title, author_id, editor_id, meta, tags, pages, secret, summary) values
  (1, 'A Wizard of Earthsea', 1, 2, '{"rating": 5, "shelf": {"row": "A"}}', '{fantasy,classic}', '[1,200)', false,
   'a young wizard learns the true names of things'),
  (2, 'The Dispossessed', 1, 3, '{"rating": 4, "shelf": {"row": "B"}}', '{scifi,classic}', '[1,400)', false,
   'an anarchist physicist travels between two worlds'),
  (3, 'Kindred', 2, 1, '{"rating": 5}', '{scifi}', '[1,300)', false, 'a woman is pulled back in time'),
  (4, 'Consider Phlebas', 3, null, null, '{scifi,space}', '[500,700)', false, null),
  (5, 'Unpublished Draft', 3, null, null, '{}', null, true, 'hidden by row level security');
insert into public.genres values (1, 'fantasy'), (2, 'science fiction'), (3, 'literary');
insert into public.book_genres values (1, 1), (2, 2), (2, 3), (3, 2), (4, 2), (5, 1);
insert into extra.notes values (1, 'a note in another schema');
