"""A fleet: an environment's hosts, each connected (fab.hosts), and fanning work
out over them in parallel, one thread per host, failures gathered and raised together.
"""
import concurrent.futures
import threading
import time

from fab import events, steps as batch
from fab.errors import StepFailed
from fab.events import stream
from fab.hosts import connect, describe_error


class Fleet:
    """The hosts of one environment, each with an open connection."""

    def __init__(self, env, hosts, balancers=()):
        self.env = env
        self.hosts = {host.name: host for host in hosts}
        #: Proxies outside the fleet that balance its hosts: a task limited to some
        #: hosts still drains those hosts there. Nothing else runs on them.
        self.balancers = {host.name: host for host in balancers}
        #: {host: why} of hosts left out of a partial fleet (see `connect`).
        self.unreachable = {}
        #: The task's deploy lock (fab.operations.lock.HeldLock) while it holds one:
        #: checked before every step, so a task that lost it changes nothing more.
        self.lock = None
        self._addresses = {}
        opening = threading.BoundedSemaphore(env.ssh_concurrency)
        for host in [*hosts, *balancers]:
            host.opening = opening

    @classmethod
    def connect(cls, env, names=None, also=(), balancers=(), partial=False):
        """Connections to `names` (default: every host) and to the proxies `balancers`,
        opened in parallel, at most `ssh_concurrency` at a time, together with the
        hosts `also` (connections the fleet does not own, e.g. the lock's).

        Every host key is verified here, before any host is changed. A `partial`
        fleet (for reading only) leaves out the hosts it cannot reach, in `unreachable`.
        """
        fleet = cls(env, [connect(name, env) for name in (names or env.hosts)],
                    [connect(name, env) for name in balancers])
        everything = [*fleet.hosts.values(), *fleet.balancers.values(), *also]
        opening = cls(env, everything)  # one bound on connections opening, for all of them
        opening.hosts = {str(index): host for index, host in enumerate(everything)}
        if not partial:
            opening.each("connect", lambda host: host.open(), quiet=True)
            return fleet
        _, failures = opening.attempt("connect", lambda host: host.open(), quiet=True)
        fleet.leave_out(failures)
        return fleet

    def leave_out(self, failures):
        """Drop the hosts of `failures` ({host: why}) from this fleet, into `unreachable`."""
        for name, why in failures.items():
            self.hosts.pop(name).close()
            self.unreachable[name] = why

    def __getitem__(self, name):
        return self.hosts[name]

    @property
    def names(self):
        return list(self.hosts)

    @property
    def states(self):
        """{host name: HostState} as last read."""
        return {name: host.state for name, host in self.hosts.items()}

    def address_of(self, name):
        """The address of host `name`, connected or not (ssh_config resolves it)."""
        if name in self.hosts:
            return self.hosts[name].address
        if name not in self._addresses:
            self._addresses[name] = connect(name, self.env).address
        return self._addresses[name]

    def of_role(self, role):
        return [self.hosts[name] for name in self.env.topology.hosts_of(role) if name in self.hosts]

    @property
    def connected(self):
        """{name: Host} of every host connected: the fleet's and its balancers."""
        return {**self.balancers, **self.hosts}

    def proxies_of(self, role):
        """The connected hosts of proxy role `role`: the fleet's and its balancers."""
        connected = self.connected
        return [connected[name] for name in self.env.topology.hosts_of(role) if name in connected]

    def each(self, step, action, hosts=None, quiet=False):
        """Run `action(host)` on every host in parallel; return {host name: result}.

        Every host runs to the end of the step before any failure is raised, and
        then all of them are raised together: a failure is never hidden.
        """
        results, failures = self.attempt(step, action, hosts, quiet)
        if failures:
            raise StepFailed(step, failures)
        return results

    def attempt(self, step, action, hosts=None, quiet=False):
        """Like `each`, but return ({host: result}, {host: failure line}) without raising.

        If the deployer is interrupted meanwhile, the steps still running are
        stopped on their hosts (their connections closed) before the interrupt
        goes on: no thread keeps changing a host after that.
        """
        results, failures = {}, {}

        def work(host):
            stream.publish(events.StepStarted(host.name, step))
            started = time.monotonic()
            try:
                value = action(host)
            except Exception as error:  # noqa: BLE001 - reported per host
                failures[host.name] = self.report_failure(host, step, error, time.monotonic() - started)
                return
            results[host.name] = value
            note = value if isinstance(value, str) and value else "ok"
            outcome = events.SKIPPED if note.startswith("skipped") else events.OK
            stream.publish(events.StepFinished(
                host.name, step, outcome, note=note, seconds=time.monotonic() - started, quiet=quiet))

        self.fan_out(hosts, work)
        return results, failures

    def each_steps(self, steps_for, hosts=None, quiet=False):
        """Run each host's steps (`steps_for(host)`: a list of fab.steps.Step) in one
        round trip per host, all hosts in parallel; return {host: {step: fab.steps.Outcome}}.

        Each step is reported on its own, as if run alone, as its host says it
        started and ended (with the host's times), after the event its `result` is,
        if it is one (fab.events.Event, e.g. what the host received); failures are
        raised together (StepFailed) once every host has finished.
        """
        results, failures = self.attempt_steps(steps_for, hosts, quiet)
        if failures:
            raise StepFailed("/".join(sorted({step for step, _ in failures.values()})),
                             {host: message for host, (_, message) in failures.items()})
        return results

    def attempt_steps(self, steps_for, hosts=None, quiet=False):
        """Like `each_steps`, but return ({host: {step: Outcome}}, {host: (step, failure line)})
        without raising."""
        planned = {host.name: steps_for(host) for host in self._targets(hosts)}
        results, failures = {}, {}

        def work(host):
            steps = planned[host.name]
            began = {}  # step: when the host's word that it started arrived (monotonic)

            def reported(report):  # as the host says it, so the outputs show what runs there
                if isinstance(report, batch.Started):
                    began[report.step] = time.monotonic()
                    stream.publish(events.StepStarted(host.name, report.step))
                elif report.outcome != events.FAILED:  # a failure is published with its output
                    if isinstance(report.result, events.Event):  # what it did, for the outputs to record
                        stream.publish(report.result)
                    stream.publish(events.StepFinished(
                        host.name, report.step, events.SKIPPED if report.outcome == "skipped" else events.OK,
                        note=report.note, seconds=report.seconds, quiet=quiet))

            try:
                done = host.run_steps(steps, on_report=reported)
            except Exception as error:  # noqa: BLE001 - reported per host
                done = getattr(error, "done", [])
                failed = getattr(error, "step", None) or steps[min(len(done), len(steps) - 1)].name
                seconds = getattr(error, "seconds", None)
                if seconds is None and failed in began:  # cut short: the time since it began
                    seconds = time.monotonic() - began[failed]
                failures[host.name] = (failed, self.report_failure(host, failed, error, seconds))
                return
            results[host.name] = {outcome.step: outcome for outcome in done}

        self.fan_out([self.hosts[name] for name, steps in planned.items() if steps], work)
        return results, failures

    @staticmethod
    def report_failure(host, step, error, seconds=None):
        """Publish `step`'s failure on `host` after `seconds` (None: unknown); its one
        line. Internal bugs are raised."""
        message = describe_error(error)
        if message is None:
            raise error
        stream.publish(events.StepFinished(host.name, step, events.FAILED, note=message, seconds=seconds or 0.0,
                                           output=getattr(error, "output", "")))
        return message

    def _targets(self, hosts):
        return list(hosts) if hosts is not None else list(self.hosts.values())

    def fan_out(self, hosts, work):
        """Run `work(host)` on every host in parallel, to the end. On an interrupt,
        the hosts still working are stopped (their steps' sessions closed), and each
        `work` reports its own step stopped, before the interrupt goes on."""
        targets = self._targets(hosts)
        if not targets:
            return
        if self.lock is not None:
            self.lock.check()
        # One thread per host: no host's step waits for another's. What is bounded is
        # how many connections open at once (Host.open, `ssh_concurrency`).
        pool = concurrent.futures.ThreadPoolExecutor(max_workers=len(targets))
        futures = {pool.submit(work, host): host for host in targets}
        try:
            for future in concurrent.futures.as_completed(futures):
                future.result()
        except BaseException:
            # Each step stopped here is reported by its own thread: "stopped", under
            # the name of the step that was running (see Host.execute, run_steps).
            for future, host in futures.items():
                if not future.done():
                    host.interrupt()
            raise
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    def close(self):
        for host in [*self.hosts.values(), *self.balancers.values()]:
            host.close()
