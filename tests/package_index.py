"""A package index for tests, on loopback: PEP 503 pages of a wheelhouse folder
(/simple/<project>/, /files/<wheel>, each link with its sha256), and tiny wheels
made on the spot. Used by tests/test_credentials.py (behind Basic credentials, in
its own server) and tests/test_build_once.py (as the only index there is)."""
import base64
import contextlib
import hashlib
import http.server
import os
import re
import sys
import threading
import zipfile


def normalized(name):
    """A project name as PEP 503 compares it."""
    return re.sub(r"[-_.]+", "-", name).lower()


def sha256_of(path):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def index_response(wheelhouse, path):
    """(status, headers, body) answering `path` from the wheelhouse folder, read anew
    at each request (a wheel copied in is served from then on)."""
    wheels = sorted(name for name in os.listdir(wheelhouse) if name.endswith(".whl"))
    match = re.match(r"^/simple/([^/]+)/$", path)
    if match:
        project = normalized(match.group(1))
        links = "".join(f'<a href="/files/{name}#sha256={sha256_of(os.path.join(wheelhouse, name))}">{name}</a>\n'
                        for name in wheels if normalized(name.split("-")[0]) == project)
        return 200, [("Content-Type", "text/html")], f"<html><body>\n{links}</body></html>\n".encode()
    if path.startswith("/files/") and path[len("/files/"):] in wheels:
        with open(os.path.join(wheelhouse, path[len("/files/"):]), "rb") as handle:
            return 200, [("Content-Type", "application/octet-stream")], handle.read()
    return 404, [], b""


class PackageIndex(http.server.ThreadingHTTPServer):
    """The index of `wheelhouse` on 127.0.0.1 (a free port). `requests` records every
    path asked; `on_listing(project)`, if set, runs before a project's page is answered
    (a test changes what the index serves meanwhile)."""

    daemon_threads = True

    def __init__(self, wheelhouse):
        super().__init__(("127.0.0.1", 0), _IndexHandler)
        self.wheelhouse = wheelhouse
        self.requests = []
        self.on_listing = None

    @property
    def port(self):
        return self.server_address[1]

    def handle_error(self, request, client_address):
        """A client that hung up mid-answer (pip or uv giving up a download it has
        elsewhere) is no error of the index: only anything else is printed."""
        if not isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            super().handle_error(request, client_address)

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}/simple"


class _IndexHandler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_HEAD(self):  # uv asks a wheel's size first
        self.do_GET(head=True)

    def do_GET(self, head=False):
        path = self.path.split("?", 1)[0]
        self.server.requests.append(path)
        match = re.match(r"^/simple/([^/]+)/$", path)
        if match and self.server.on_listing:
            self.server.on_listing(normalized(match.group(1)))
        answer(self, *index_response(self.server.wheelhouse, path), head=head)


def answer(handler, status, headers, body, head=False):
    """Send the response (status, headers, body) through `handler` (the body unless `head`)."""
    handler.send_response(status)
    for name, value in headers:
        handler.send_header(name, value)
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    if not head:
        handler.wfile.write(body)


@contextlib.contextmanager
def serving(server):
    """Run `server` (an http.server) in a thread while the block runs."""
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def make_wheel(folder, name, version, requires=(), payload=b""):
    """A pure-Python wheel of project `name` (a module of the same name, with
    `__version__` and `payload` as a data file) into `folder`; its path."""
    module = name.replace("-", "_")
    dist_info = f"{module}-{version}.dist-info"
    files = {
        f"{module}/__init__.py": f"__version__ = {version!r}\n".encode(),
        f"{dist_info}/METADATA": "".join([
            "Metadata-Version: 2.1\n", f"Name: {name}\n", f"Version: {version}\n",
            *(f"Requires-Dist: {requirement}\n" for requirement in requires)]).encode(),
        f"{dist_info}/WHEEL": b"Wheel-Version: 1.0\nGenerator: tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    if payload:
        files[f"{module}/payload.bin"] = payload
    record = "".join(f"{path},sha256={_record_digest(data)},{len(data)}\n" for path, data in files.items())
    files[f"{dist_info}/RECORD"] = (record + f"{dist_info}/RECORD,,\n").encode()
    path = os.path.join(folder, f"{module}-{version}-py3-none-any.whl")
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as wheel:
        for member, data in files.items():
            wheel.writestr(zipfile.ZipInfo(member, date_time=(2026, 1, 1, 0, 0, 0)), data)
    return path


def _record_digest(data):
    return base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
