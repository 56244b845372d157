"""`python -m fab.dashboard [--bind ADDRESS] [--port N] [--proxy]`: the same as
`fab dashboard[:bind=,port=,proxy=yes]`, for a machine that serves it as a service."""
import argparse
import sys

from fab.dashboard.serving import DEFAULT_BIND, DEFAULT_PORT, serve
from fab.errors import DeployError
from fab.secrets import safe_to_show


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m fab.dashboard",
                                     description="A read-only web page over the history store.")
    parser.add_argument("--bind", default=DEFAULT_BIND,
                        help=f"address to listen on (default {DEFAULT_BIND}; any other needs "
                             "FAB_DASHBOARD_TOKEN or --proxy)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT})")
    parser.add_argument("--proxy", action="store_true",
                        help="behind a reverse proxy that authenticates: trust its X-Forwarded-* headers")
    arguments = parser.parse_args(argv)
    try:
        serve(arguments.bind, arguments.port, arguments.proxy)
    except DeployError as error:
        print(f"error: {safe_to_show(error)}", file=sys.stderr)
        return error.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
