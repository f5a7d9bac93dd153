"""``python -m gpulab.hub.jobs.gateway``: run the jobs gateway (a JupyterHub service)."""

from __future__ import annotations

import sys

from .app import main

sys.exit(main())
