"""JSON API routers."""
