"""Storage (Supabase Storage's model): SQL over `storage.*` (objects.py), blob backends (backends.py), the steps of
an upload/read/copy across both (store.py), signed-URL tokens (signing.py), the janitor (janitor.py) and the URL
helpers other parts of segbase call (urls.py). New storage SQL goes in objects.py."""
