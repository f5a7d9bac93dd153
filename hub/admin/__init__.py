"""``gpulab admin``: administration commands (``check-policy``, and more registered by others)."""
