"""`fab dashboard`: a read-only web page over the history store (issue 21).

    reading.py    the stores, opened read-only, for every environment (Catalogue, Reader)
    delivery.py   the delivery figures of an environment's operations (pure)
    pictures.py   the SVG pictures: an operation's timeline, small bar charts (pure)
    pages.py      what each page shows, as the dict its JSON twin answers
    app.py        the Starlette app: routes, pages, JSON twins, the log stream
    security.py   the bind rule, the token, the security headers, read-only methods
    serving.py    starting it (uvicorn) for `fab dashboard` and `python -m fab.dashboard`
    templates/    the pages (Jinja2, autoescaped); static/: dashboard.css, live.js

Nothing heavy is imported here: `fab -l` loads the task list only.
"""
