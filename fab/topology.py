"""Which services, programs and balancers sit on which hosts of an environment.

Pure: built from an environment's roles and services (`env.topology`, made once
per environment), it answers what the tasks, the operations and the rollout ask
about the fleet's layout, with no SSH and no files. A host runs every service of
every role that names it; a service that `balances` another is a proxy in front
of that service's hosts, drained from before they restart.
"""
import dataclasses
import functools
from typing import Dict, Tuple

from fab.errors import ConfigError


@dataclasses.dataclass(frozen=True, eq=False)
class Topology:
    #: The environment's name: its supervisor programs are named <environment>-<service>.
    environment: str
    #: {role: its hosts}, in the environment file's order.
    roles: Dict[str, Tuple[str, ...]]
    #: {service name: fab.settings.services.Service}.
    services: Dict[str, object]
    #: The role whose supervisor programs are the pillows (start_pillows, stop_pillows).
    pillow_role: str
    #: Roles that run the app's code whatever their services: manage's, migrate's, predeploy's.
    app_roles: Tuple[str, ...] = ()

    @classmethod
    def of(cls, env):
        app_roles = tuple(setting.role for setting in (env.manage, env.migrate, env.predeploy) if setting)
        return cls(env.name, {role: tuple(hosts) for role, hosts in env.roles.items()},
                   dict(env.services), env.pillow_role, app_roles)

    # --- hosts and roles

    @property
    def hosts(self):
        """Every host once, in the order the roles first name them."""
        seen = []
        for hosts in self.roles.values():
            seen.extend(h for h in hosts if h not in seen)
        return seen

    def roles_of(self, host):
        return list(self._roles_by_host.get(host, ()))

    @functools.cached_property
    def _roles_by_host(self):
        """{host: its roles, in the environment file's order}: a host's roles are asked for
        a dozen times per host per deploy, and each search read every role's hosts."""
        by_host = {}
        for role, hosts in self.roles.items():
            for host in hosts:
                roles = by_host.setdefault(host, [])
                if role not in roles:
                    roles.append(role)
        return by_host

    def hosts_of(self, role):
        """The hosts of `role`; ConfigError naming the known roles if there is no such role."""
        if role not in self.roles:
            raise ConfigError(
                f"{self.environment}: unknown role {role!r} (roles: {', '.join(sorted(self.roles))})"
            )
        return list(self.roles[role])

    def runs_app(self, host):
        """Whether `host` runs the app's code, so needs the release's virtualenv and build
        commands: unless it has services and all of them run none (`app: false`, e.g. a
        proxy), and it is in no role that runs app code (`app_roles`)."""
        services = self.services_on(host)
        return (not services or any(s.runs_app for s in services.values())
                or any(role in self.app_roles for role in self.roles_of(host)))

    # --- services and programs

    def services_on(self, host):
        """{name: Service} of every service `host` runs (through any of its roles)."""
        roles = self.roles_of(host)
        return {name: s for name, s in self.services.items() if s.role in roles}

    def supervised_on(self, host):
        return {n: s for n, s in self.services_on(host).items() if s.control == "supervisor"}

    def port_services_on(self, host):
        return {n: s for n, s in self.services_on(host).items() if s.control == "port"}

    def service_ports(self):
        """{service: port} of every service with a port, as configs render them now."""
        return {name: s.port for name, s in self.services.items() if s.port}

    def program_name(self, service_name):
        """The supervisor program name of a service in this environment."""
        return f"{self.environment}-{service_name}"

    def pillows_on(self, host):
        """Supervisor programs of the pillow role on `host`."""
        if host not in self.roles.get(self.pillow_role, ()):
            return []
        return [self.program_name(n) for n, s in self.services.items()
                if s.role == self.pillow_role and s.control == "supervisor"]

    # --- balancers

    def balanced_services(self, host):
        """Services on `host` that a proxy balances (they are drained to restart)."""
        balanced = {s.balances for s in self.services.values() if s.balances}
        return [name for name in self.supervised_on(host) if name in balanced]

    def balanced_hosts(self, hosts):
        """Those of `hosts` that run a balanced service, in their order."""
        return [h for h in hosts if self.balanced_services(h)]

    def balancer_hosts(self, hosts):
        """Those of `hosts` that run a proxy (a service that balances another), in their
        order: they go live last, once what they balance runs the new release."""
        return [h for h in hosts if any(s.balances for s in self.services_on(h).values())]

    def balancers_outside(self, hosts):
        """The proxy hosts not among `hosts` that balance a service running on one of them:
        a task limited to `hosts` drains those hosts there too."""
        outside = []
        for proxy in self.services.values():
            balanced = self.services.get(proxy.balances) if proxy.balances else None
            if balanced and set(self.hosts_of(balanced.role)) & set(hosts):
                outside += [name for name in self.hosts_of(proxy.role) if name not in hosts and name not in outside]
        return outside
