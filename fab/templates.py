"""Rendering the project's Jinja2 templates (`templates/`), strictly.

A missing variable is an error naming the template and the variable, never an
empty string in a config file.
"""
import os

import jinja2

from fab import PROJECT_ROOT
from fab.errors import ConfigError

TEMPLATES_DIR = os.path.join(PROJECT_ROOT, "templates")

_jinja = jinja2.Environment(
    loader=jinja2.FileSystemLoader(TEMPLATES_DIR),
    undefined=jinja2.StrictUndefined,
    keep_trailing_newline=True,
    autoescape=False,
)


def render(template, **context):
    try:
        return _jinja.get_template(template).render(**context)
    except jinja2.TemplateNotFound:
        raise ConfigError(f"template {template!r} not found in {TEMPLATES_DIR}") from None
    except jinja2.UndefinedError as error:
        raise ConfigError(f"template {template}: {error.message}") from None
    except jinja2.TemplateSyntaxError as error:
        raise ConfigError(f"template {template} line {error.lineno}: {error.message}") from None
