"""The admin dashboard: one server-rendered page (inline SVG chart, no CDN, no JS library),
served by the culler service at ``/services/culler/dashboard/`` to hub admins only."""

from .render import STATIC_PATH, TEMPLATE_PATH, XSRF_SLOT, render_dashboard

__all__ = ["STATIC_PATH", "TEMPLATE_PATH", "XSRF_SLOT", "render_dashboard"]
