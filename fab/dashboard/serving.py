"""Starting the dashboard: checks first (who may read it, is the port free), each a
user's error in one line (exit 2), then uvicorn on the socket already bound.
`fab dashboard` imports this module only when it runs (the web stack is not `fab -l`'s)."""
import errno
import os
import socket

import uvicorn

from fab.dashboard import reading, security
from fab.dashboard.app import create_app
from fab.errors import UsageError

DEFAULT_BIND = "127.0.0.1"
DEFAULT_PORT = 8465


def listening_socket(bind, port):
    """A socket bound to (bind, port) and listening; UsageError if the port is taken or
    the address is not this machine's."""
    if not 0 < port < 65536:
        raise UsageError(f"dashboard: port must be from 1 to 65535, got {port}")
    try:
        family, kind, proto, _name, address = socket.getaddrinfo(
            bind.strip("[]"), port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
    except socket.gaierror as error:
        raise UsageError(f"dashboard: cannot bind to {bind}: {error.strerror}") from None
    listener = socket.socket(family, kind, proto)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind(address)
        listener.listen(128)
    except OSError as error:
        listener.close()
        if error.errno == errno.EADDRINUSE:
            raise UsageError(f"dashboard: port {port} on {bind} is in use (give another: port=N)") from None
        raise UsageError(f"dashboard: cannot bind to {bind}:{port}: {error.strerror}") from None
    return listener


def serve(bind=DEFAULT_BIND, port=DEFAULT_PORT, behind_proxy=False, environ=os.environ, announce=print):
    """Serve the dashboard over every environment's store until interrupted."""
    token = environ.get(security.TOKEN_VARIABLE) or None
    security.check_exposure(bind, token, behind_proxy)
    listener = listening_socket(bind, port)
    # On loopback with no proxy, only a loopback Host: a web page of another site cannot
    # read it by making its own name resolve to 127.0.0.1 (DNS rebinding).
    local_only = security.is_loopback(bind) and not behind_proxy
    app = create_app(lambda: reading.discover(environ), token=token, behind_proxy=behind_proxy,
                     local_only=local_only)
    # proxy_headers: uvicorn takes the client's address and scheme from X-Forwarded-*, but
    # only from the addresses in FORWARDED_ALLOW_IPS (default 127.0.0.1: a proxy on this machine).
    config = uvicorn.Config(app, proxy_headers=behind_proxy, server_header=False, log_level="warning",
                            timeout_graceful_shutdown=2)
    host = f"[{bind}]" if ":" in bind else bind
    announce(f"dashboard: http://{host}:{port}/ (read-only; Ctrl-C stops it)"
             + ("; give ?token=... once" if token else ""))
    try:
        uvicorn.Server(config).run(sockets=[listener])
    except KeyboardInterrupt:
        pass  # uvicorn stopped gracefully, then raised the Ctrl-C again: stopping is what it asked
    finally:
        listener.close()
