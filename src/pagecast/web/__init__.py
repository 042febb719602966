"""The web edge: FastAPI app, JSON API and (later) the dashboard. Import `pagecast.web.app`."""
