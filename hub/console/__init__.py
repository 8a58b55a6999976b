"""The county board (县政务服务中心 web console) over `shared.console`.

Pages: 上报件看板 `/` (every escalated matter with both hops' clocks), the matter page
`/matters/{id}` (what is decided on, history, applicant, the decisions the signed-in staff member may
take, the county clock, 督办), 超期统计 `/overdue`, 督办通知 `/notices`, 否定报备 `/refusals`,
乡镇接入 `/townships` (link keys, refused escalations) and 工作日历 `/calendar`.

    auth = open_console_auth(app)                  # staff tables in the county database
    server = start_console_server(create_console_app(app, auth), "127.0.0.1:8800")
"""
from hub.console.app import SESSION_COOKIE, create_console_app, open_console_auth
from shared.console.serve import ConsoleServer, start_console_server

__all__ = ["create_console_app", "open_console_auth", "start_console_server", "ConsoleServer", "SESSION_COOKIE"]
