"""The county's JSON API (FastAPI), mounted at `/api` in the board's web server; its OpenAPI document
is served at `/api/openapi.json`. See `hub.api.app`."""
from hub.api.app import HANDLERS, KEY_MANAGERS, STAFF, create_hub_api

__all__ = ["create_hub_api", "STAFF", "HANDLERS", "KEY_MANAGERS"]
