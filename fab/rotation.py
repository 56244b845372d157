"""Which hosts the proxies leave out of their rotation while a task restarts them,
and where each host's services listen; the proxies' upstream lists are rewritten
only when that changes."""
from fab.operations import proxy as proxy_ops


class Rotation:
    """Which hosts the proxies leave out, and where each host's services listen;
    rewritten on the proxies only when it changes.

    While a service's port changes, a host listens on the old port until it is
    restarted with the new configs: the proxies send it there until then.
    """

    def __init__(self, fleet):
        self.fleet = fleet
        self.drained = set()
        #: {host: {service: port}} as each host listens now (its current release's
        #: recorded ports; hosts outside the fleet and unrecorded ports: the setting's).
        self.listening = {}
        for name, host in fleet.connected.items():
            found = host.state.release(host.state.current) if host.state and host.state.current else None
            self.listening[name] = dict(found.meta.ports) if found and found.meta else {}
        self._written = (set(), self._all_backends())  # what the proxies have now

    def moved(self, targets):
        """The hosts of `targets` ({host: Target}) now run their target's configs."""
        for name, target in targets.items():
            if target.release:
                self.listening[name] = dict(target.ports)

    def backends(self, service_name):
        """[(address, port)] of the hosts running `service_name` (all of them, connected or not)."""
        env = self.fleet.env
        service = env.services[service_name]
        return [(self.fleet.address_of(name), self.listening.get(name, {}).get(service_name, service.port))
                for name in env.topology.hosts_of(service.role)]

    def set(self, drained):
        drained = set(drained)
        written = (drained, self._all_backends())
        if written == self._written:
            return
        env = self.fleet.env
        for proxy_name, proxy in env.services.items():
            proxies = self.fleet.proxies_of(proxy.role) if proxy.balances else []
            if not proxies:
                continue
            backends = self.backends(proxy.balances)
            addresses = {self.fleet.address_of(name) for name in drained}
            self.fleet.each("drain" if drained else "undrain",
                            lambda host: proxy_ops.write_upstream(host, proxy_name, proxy, backends, addresses),
                            hosts=proxies)
        self.drained = drained
        self._written = written

    def _all_backends(self):
        env = self.fleet.env
        return {proxy.balances: tuple(self.backends(proxy.balances))
                for proxy in env.services.values() if proxy.balances}


def rotation_listing(env, upstreams, unread, address_of):
    """What `releases` shows of each proxy: {proxy host: [{service, balances,
    in_rotation, out_of_rotation, error, maintenance}]} (hosts by name, in the
    environment's order; a backend no host of the balanced role has is named by its
    address). `upstreams`: {proxy host: {proxy service: its upstream list's text, or
    None: none written yet}}; `unread`: {proxy host: why it could not be read};
    `address_of(host)`: a host's address. `maintenance` is None: not read here."""
    listing = {}
    for proxy_host in env.hosts:
        proxies = {name: s for name, s in env.topology.services_on(proxy_host).items() if s.balances}
        if not proxies:
            continue
        entries = []
        for name, proxy in proxies.items():
            balanced = env.topology.hosts_of(env.services[proxy.balances].role)
            entry = {"service": name, "balances": proxy.balances, "in_rotation": [], "out_of_rotation": [],
                     "error": None, "maintenance": None}
            text = upstreams.get(proxy_host, {}).get(name)
            if proxy_host in unread:
                entry["error"] = f"not read: {unread[proxy_host]}"
            elif text is None:
                entry["error"] = "no upstream list yet (nothing deployed here)"
            else:
                addresses, down = proxy_ops.parse_upstream(text)
                named = {address_of(host): host for host in balanced}
                for address in addresses:
                    side = "out_of_rotation" if address in down else "in_rotation"
                    entry[side].append(named.get(address, address))
            entries.append(entry)
        listing[proxy_host] = entries
    return listing
