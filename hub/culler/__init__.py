"""GPU-aware idle culling: pure decisions (rules) and per-server bookkeeping (state)."""
