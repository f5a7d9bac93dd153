"""The image catalogue (placeholder; filled in by the catalogue work)."""
