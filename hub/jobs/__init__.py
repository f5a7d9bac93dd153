"""Batch jobs: the spec, policy checks, pure manifest builders, ids and the S3 side."""
