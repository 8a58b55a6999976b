"""The township's JSON API (FastAPI), mounted at `/api` in the console's web server; its OpenAPI
document is served at `/api/openapi.json`. See `town_center.api.app`."""
from town_center.api.app import AGENT_MANAGERS, HANDLERS, STAFF, create_town_api

__all__ = ["create_town_api", "STAFF", "HANDLERS", "AGENT_MANAGERS"]
