"""litestream-guard: what stands between Litestream and its replica (see cli)."""
