"""The township operator console (Chinese web pages over `shared.console`)."""
from town_center.console.app import ConsoleServer, create_console_app, open_console_auth, start_console_server

__all__ = ["create_console_app", "open_console_auth", "start_console_server", "ConsoleServer"]
