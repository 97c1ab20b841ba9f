"""A small key-value port with TTLs: idempotency, rate limits, deduplication, token caches.

It lives in the session store's backend (memory, SQLite or Redis) so what it remembers holds
across every worker that shares that backend.
"""
