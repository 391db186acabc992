"""segbase: a self-hostable, Supabase-compatible backend for AI-job products."""
