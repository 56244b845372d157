"""The dashboard's web app (Starlette): its routes, each page with its JSON twin, the log
stream (Server-Sent Events) and the static files, behind fab.dashboard.security.Guard.

Every route reads: the readers open each store read-only (fab.dashboard.reading), and
no route takes anything but GET or HEAD. Pages are rendered on the server (Jinja2,
autoescaped; the timeline and charts are SVG from fab.dashboard.pictures); the only
script is static/live.js, which follows a running operation's log.
"""
import asyncio
import contextlib
import os
import threading
import time

import jinja2
from markupsafe import Markup
from sqlalchemy.exc import DBAPIError
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from fab import cli
from fab.dashboard import delivery, pages, pictures, reading
from fab.dashboard.security import Guard
from fab.errors import DeployError
from fab.history.engine import describe_database_error
from fab.secrets import safe_to_show

HERE = os.path.dirname(os.path.abspath(__file__))
#: How often the log stream looks for new lines (the issue: within about a second).
POLL_SECONDS = 0.5
#: A comment line this often keeps proxies from closing a quiet stream.
KEEPALIVE_SECONDS = 15.0


def create_app(catalogue_factory, token=None, behind_proxy=False, local_only=False):
    """The dashboard (an ASGI app: the Starlette app inside security.Guard) over the
    Catalogue `catalogue_factory()` returns (opened at the first request, closed when the
    app stops). With `token`, every request must show it; `behind_proxy`: X-Forwarded-Proto
    says whether the browser used https; `local_only`: only a loopback Host is answered."""
    catalogue = _Lazy(catalogue_factory)
    templates = Jinja2Templates(env=_template_environment())

    def render(request, name, data, status_code=200):
        return templates.TemplateResponse(request, name, {"data": data}, status_code=status_code)

    def reader_of(environment):
        try:
            return catalogue.get().reader(environment)
        except KeyError:
            raise HTTPException(404, f"no environment {environment!r}") from None

    def operation_of(environment, operation_id):
        detail = reader_of(environment).operation(environment, operation_id, time.time())
        if detail is None:
            raise HTTPException(404, f"{environment} has no operation {operation_id}")
        return detail

    # -- the pages and their JSON twins ------------------------------------------

    def environments_data(request):
        return pages.environments_page(catalogue.get(), time.time())

    def history_data(request):
        filters, before = pages.history_filters(request.query_params), pages.history_cursor(request.query_params)
        try:
            rows, following = reading.history(catalogue.get(), filters, before=before, limit=pages.HISTORY_PAGE)
        except ValueError:
            raise HTTPException(400, f"before={before!r} is not a cursor this dashboard gave") from None
        return pages.history_page(catalogue.get(), filters, rows, following)

    def operation_and_log(request):
        environment, operation_id = _operation_address(request)
        detail = operation_of(environment, operation_id)
        return detail, reader_of(environment).log_after(operation_id, 0, limit=pages.LOG_ON_PAGE)

    def delivery_data(request):
        try:
            environment, days = pages.delivery_parameters(catalogue.get(), request.query_params)
        except pages.BadParameter as error:
            raise HTTPException(400, str(error)) from None
        if environment is None:
            return pages.delivery_page(None, days, None, [])
        now = time.time()
        since = now - days * 86400
        operations = reader_of(environment).operations_in_window(environment, since, now)
        figures = delivery.figures(operations, since, now, now)
        return pages.delivery_page(environment, days, figures, catalogue.get().environments)

    def environments_page(request):
        return render(request, "environments.html", environments_data(request))

    def environments_api(request):
        return JSONResponse(environments_data(request))

    def history_page(request):
        return render(request, "history.html", history_data(request))

    def history_api(request):
        return JSONResponse(history_data(request))

    def operation_page(request):
        detail, log = operation_and_log(request)
        return render(request, "operation.html",
                      {**pages.operation_page(detail, log), "timeline": Markup(timeline_of(detail, log))})

    def operation_api(request):
        # The same operation; its log has its own address (log_api), paged.
        return JSONResponse(pages.with_iso_times(operation_of(*_operation_address(request))))

    def timeline(request):
        return Response(timeline_of(*operation_and_log(request)), media_type="image/svg+xml")

    def log_api(request):
        environment, operation_id = _operation_address(request)
        detail = operation_of(environment, operation_id)
        after = pages.resume_after(None, request.query_params.get("after"))
        lines = reader_of(environment).log_after(operation_id, after, limit=pages.LOG_ON_PAGE)
        return JSONResponse({"operation": operation_id, "outcome": detail["outcome"], "after": after,
                             "lines": [{"n": number, "text": text} for number, text in lines],
                             "last": lines[-1][0] if lines else after})

    def delivery_page(request):
        data = delivery_data(request)
        chart = pages.chart_label(data["days"])
        picture = Markup(pictures.bars_svg(data["figures"]["per_day"], chart)) if data["figures"] else ""
        return render(request, "delivery.html", {**data, "chart": picture})

    def delivery_api(request):
        return JSONResponse(delivery_data(request))

    async def log_stream(request):
        environment, operation_id = _operation_address(request)
        await run_in_threadpool(operation_of, environment, operation_id)  # 404 before the stream begins
        after = pages.resume_after(request.headers.get("last-event-id"), request.query_params.get("after"))
        return StreamingResponse(_follow(reader_of(environment), environment, operation_id, after),
                                 media_type="text/event-stream",
                                 headers={"cache-control": "no-store", "x-accel-buffering": "no"})

    # -- answers when something is wrong -----------------------------------------

    def wrong(request, status, line):
        if request.url.path.startswith("/api/"):
            return JSONResponse({"error": line}, status_code=status)
        if request.url.path.endswith(("/log", ".svg")) or request.url.path.startswith("/static/"):
            return PlainTextResponse(line + "\n", status_code=status)
        return render(request, "error.html", {"status": status, "line": line}, status_code=status)

    async def http_error(request, error):
        return wrong(request, error.status_code, str(error.detail))

    async def store_error(request, error):
        # The store went away or refused a read: say so in one line (its URL masked).
        if isinstance(error, DBAPIError):
            line = f"the history store cannot be read: {describe_database_error(error)}"
        else:
            line = str(error)
        return wrong(request, 503, safe_to_show(line))

    routes = [
        Route("/", environments_page),
        Route("/api/environments", environments_api),
        Route("/history", history_page),
        Route("/api/history", history_api),
        Route("/operations/{environment}/{operation_id:int}", operation_page),
        Route("/api/operations/{environment}/{operation_id:int}", operation_api),
        Route("/operations/{environment}/{operation_id:int}/timeline.svg", timeline),
        Route("/operations/{environment}/{operation_id:int}/log", log_stream),
        Route("/api/operations/{environment}/{operation_id:int}/log", log_api),
        Route("/delivery", delivery_page),
        Route("/api/delivery", delivery_api),
        Mount("/static", StaticFiles(directory=os.path.join(HERE, "static")), name="static"),
    ]

    @contextlib.asynccontextmanager
    async def lifespan(_app):
        yield
        catalogue.close()

    app = Starlette(routes=routes, lifespan=lifespan,
                    exception_handlers={HTTPException: http_error, DeployError: store_error,
                                        DBAPIError: store_error})
    # Outside Starlette's own error middleware, so that even its 500 carries the headers.
    return Guard(app, token=token, behind_proxy=behind_proxy, local_only=local_only)


def _operation_address(request):
    """(environment, operation id) of the address; 404 for an id no store can hold."""
    environment, operation_id = request.path_params["environment"], request.path_params["operation_id"]
    if operation_id > cli.MAX_WHOLE_NUMBER:
        raise HTTPException(404, f"{environment} has no operation {operation_id}")
    return environment, operation_id


def timeline_of(detail, log):
    """The operation's timeline picture, its waves as its log announced them (if in `log`,
    its first lines), else as the picture infers them."""
    return pictures.timeline_svg(detail, waves=pictures.waves_from_log(log) or None)


async def _follow(reader, environment, operation_id, after):
    """The log's lines after line `after` as `line` events, as they are stored, then `end`
    once the operation no longer runs. Whether it runs is read before its lines, so the
    lines read after it has ended are all of them."""
    quiet_since = time.monotonic()
    while True:
        detail = await run_in_threadpool(reader.operation, environment, operation_id, time.time())
        running = detail is not None and detail["outcome"] == "running"
        lines = await run_in_threadpool(reader.log_after, operation_id, after, pages.LOG_ON_PAGE)
        for number, text in lines:
            yield pages.log_event(number, text)
            after = number
        if len(lines) == pages.LOG_ON_PAGE:
            continue  # more are stored already
        if not running:
            yield pages.END_EVENT
            return
        if lines:
            quiet_since = time.monotonic()
        elif time.monotonic() - quiet_since > KEEPALIVE_SECONDS:
            yield ": still running\n\n"
            quiet_since = time.monotonic()
        await asyncio.sleep(POLL_SECONDS)


class _Lazy:
    """The catalogue, made at its first use (not at import, so a test or `--help` opens
    no store) and closed once."""

    def __init__(self, factory):
        self.factory = factory
        self.value = None
        self.lock = threading.Lock()

    def get(self):
        with self.lock:
            if self.value is None:
                self.value = self.factory()
            return self.value

    def close(self):
        with self.lock:
            if self.value is not None:
                self.value.close()
                self.value = None


def _template_environment():
    environment = jinja2.Environment(loader=jinja2.FileSystemLoader(os.path.join(HERE, "templates")),
                                     autoescape=True)
    environment.filters.update(when=_when, duration=pages.seconds_text, percent=pages.percent,
                               short=lambda commit: (commit or "")[:12])
    return environment


def _when(iso_text):
    """`2026-11-23 05:59:01` from the API's ISO text (UTC)."""
    return (iso_text or "").replace("T", " ").replace("+00:00", "")

