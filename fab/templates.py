"""Rendering Jinja2 templates strictly: an environment's own first, then the built-in ones.

An environment's templates are in its deploy folder's `templates/`; a name not
found there comes from the deployer's `fab/builtin/templates/`. A missing
variable is an error naming the template and the variable, never an empty
string in a config file. Every service template is rendered once with a sample
context when its environment is read (`check`), so a typo stops the deploy
before any host is touched.
"""
import functools
import os

from fab import BUILTIN_DIR, shell
from fab.errors import ConfigError
from fab.paths import Paths

BUILTIN_TEMPLATES = os.path.join(BUILTIN_DIR, "templates")


def supervisor_environment(variables):
    """{name: value} as supervisor's `environment=` value: KEY="value",... (quotes and %
    escaped, so a value is never parsed)."""
    return ",".join(f"{name}={supervisor_value(double_quoted(value))}" for name, value in variables.items())


def supervisor_word(value):
    """One word of a supervisor `command=`: shell-quoted (supervisor splits the line as
    a shell would) and with % escaped (supervisor expands %(name)s in its values)."""
    return supervisor_value(shell.quote(value))


def supervisor_value(value):
    """A whole supervisor value (`directory=`, `stdout_logfile=`): % escaped."""
    return str(value).replace("%", "%%")


def double_quoted(value):
    """`value` in double quotes, backslashes and quotes escaped: one word for nginx (a
    path with a space or a `;` stays one) and for supervisor's environment values."""
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


@functools.lru_cache(maxsize=None)
def _jinja(template_dirs):
    import jinja2  # when a template is first rendered: `fab -l` renders none

    jinja = jinja2.Environment(
        loader=jinja2.FileSystemLoader(list(template_dirs)),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,
    )
    jinja.filters.update(supervisor_environment=supervisor_environment, supervisor_word=supervisor_word,
                         supervisor_value=supervisor_value, nginx_quote=double_quoted)
    return jinja


def render(template_dirs, template, **context):
    """Render `template`, looked up in `template_dirs` in order; ConfigError in one line."""
    jinja = _jinja(tuple(template_dirs))
    import jinja2

    try:
        return jinja.get_template(template).render(**context)
    except jinja2.TemplateNotFound:
        raise ConfigError(f"template {template!r} not found in {' or '.join(template_dirs)}") from None
    except jinja2.UndefinedError as error:
        raise ConfigError(f"template {template}: {error.message}") from None
    except jinja2.TemplateSyntaxError as error:
        raise ConfigError(f"template {template} line {error.lineno}: {error.message}") from None


def check(template_dirs, template, context):
    """Why `template` cannot be rendered with `context` (one line), or None."""
    try:
        render(template_dirs, template, **context)
    except ConfigError as error:
        return str(error)
    return None


def service_context(env, paths, host, service_name, service, release_name):
    """What a service template gets; `host` is {name, address, cpus}."""
    program = env.topology.program_name(service_name)
    context = dict(
        env={"name": env.name, "code_root": paths.code_root},
        host=host,
        service={**service.model_dump(), "name": service_name, "workers": service.workers_for(host["cpus"])},
        program=program,
        release={"name": release_name, "path": paths.release(release_name)},
        paths=paths,
        #: The program's environment: where it runs, then the service's own variables.
        #: A service that reloads in place serves release after release from one
        #: process, so it is not told one release.
        environment={"DEPLOY_ENV": env.name,
                     **({} if service.restart == "reload" else {"DEPLOY_RELEASE": release_name}),
                     **service.environment},
        #: A command prefix that exports the environment's secrets, then execs the rest.
        load_secrets=(f"/bin/sh -c 'set -a && . \"$0\" && set +a && exec \"$@\"' "
                      f"{shell.quote(paths.secrets_file)} " if env.secrets else ""),
    )
    if service.balances:
        # Imported here: operations depend on templates, not the other way round.
        from fab.operations.proxy import upstream_name

        context["upstream"] = {
            "name": upstream_name(env.name, service.balances),
            "file": paths.proxy_upstream(program),
        }
        #: The maintenance switch (fab.operations.maintenance), for inside its server block.
        context["maintenance"] = {"include": paths.proxy_maintenance_include(program)}
    return context


def sample_service_context(env, service_name, service):
    """A service's template context on an imagined host, to check templates on load."""
    root = env.code_root.replace("~", "/home/deploy", 1)
    host = {"name": "example", "address": "127.0.0.1", "cpus": 1}
    return service_context(env, Paths(root), host, service_name, service, "2000-01-01_00.00.00")
