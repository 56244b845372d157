"""The maintenance page: every proxy answers 503 with a page and Retry-After,
except on the health and version paths (so the proxies' own health checks,
and the deployer's, still reach the app), until it is switched off.

Runs on: the hosts of proxy services (`balances: <service>`). The switch is a
snippet in shared/proxy/ that the proxy's server block includes
(Paths.proxy_maintenance_include: nothing while it is off), with its page
beside it: it is about the site, not a release, so it lasts across deploys.
Switching writes (or removes) both and reloads the proxy with its reload
command (never a restart; one that does not run starts so later), in one round
trip (fab/remote/maintenance.sh). Safe to rerun.
"""
import html
import re

from fab import templates
from fab.commands import expand, service_variables
from fab.operations import portservice
from fab.steps import Reporting, reporting_step

ROLES = "roles of proxy services"
STOCK_PAGE = "maintenance/page.html.j2"


def proxies_on(env, host_name):
    """{service name: Service} of the proxies (port services that balance one) on a host."""
    return {name: service for name, service in env.topology.port_services_on(host_name).items()
            if service.balances}


def open_paths(env, proxy):
    """The paths that stay open in maintenance: the proxy's own health path and
    those of the service it balances (health and version)."""
    balanced = env.services[proxy.balances].health_check
    checks = [proxy.health_check, balanced]
    found = [path for check in checks if check for path in (check.path, check.version_path) if path]
    return sorted(set(found))


def page(env, message):
    """The page's text: the environment's `maintenance_template` or the stock one,
    given `message` (HTML-escaped) and the environment's name."""
    return templates.render(env.template_dirs, env.maintenance_template or STOCK_PAGE,
                            message=html.escape(message), environment=env.name)


def snippet(env, paths, program, proxy):
    """The nginx lines the proxy's server block includes while in maintenance: every
    request but those for `open_paths` gets 503, answered by the page file."""
    quote = templates.double_quoted
    page_file = paths.proxy_maintenance_page(program)
    opened = "|".join(re.escape(path) for path in open_paths(env, proxy))
    lines = [
        "# Written by `fab <env> maintenance:on`; removed by maintenance:off.",
        "error_page 503 @fab_maintenance;",
        "location @fab_maintenance {",
        f"    root {quote(paths.proxy)};",
        f"    rewrite ^ {quote('/' + page_file.rsplit('/', 1)[1])} break;",
        "    default_type text/html;",
        f"    add_header Retry-After {env.maintenance_retry_after} always;",
        "    add_header Cache-Control no-store always;",
        "}",
        f"if ($uri !~ {quote(f'^(?:{opened})$')}) {{" if opened else "if ($uri) {",
        "    return 503;",
        "}",
    ]
    return "\n".join(lines) + "\n"


def switch_step(host, on, page_text=""):
    """Step: switch every proxy of `host` on (with `page_text`) or off, and reload it."""
    env, paths = host.env, host.paths
    parts = []
    for name, proxy in proxies_on(env, host.name).items():
        variables = service_variables(host, name, proxy)
        program = variables["program"]
        parts.append(Reporting(portservice.script_command(
            "maintenance", paths.proxy_maintenance(program), snippet(env, paths, program, proxy) if on else "",
            paths.proxy_maintenance_page(program), page_text, variables["conf"],
            paths.proxy_maintenance_include(program), proxy.port,
            expand(proxy.reload, variables) if proxy.reload else ""),
            describe=lambda line, name=name: f"{name}: maintenance {line}"))
    return reporting_step("maintenance", parts, nothing="no proxy here")
