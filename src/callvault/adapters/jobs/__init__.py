"""JobQueue adapters: the embedded SQL runner (default) and procrastinate (PostgreSQL)."""
