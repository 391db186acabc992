-- Why: anon and authenticated reach storage's tables only through /storage/v1, and RLS decides which rows; TRUNCATE
-- (which RLS does not filter), REFERENCES and TRIGGER are no client's business, so they are taken back from the
-- bootstrap's Supabase-style `grant all`. service_role keeps everything.
revoke truncate, references, trigger on storage.buckets, storage.objects from anon, authenticated;
