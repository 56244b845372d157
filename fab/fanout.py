"""Who sends what to whom in a delivery (fab.transfer): pure decisions, no SSH.

A delivery goes in rounds. In each, every artifact no host holds yet goes from the
controller to ONE host that needs it (its seed); every host that holds an artifact
(and serves it) sends it to at most `fanout` receivers; a receiver holds what it got
in the next round and serves it in turn. So the holders of an artifact multiply by
up to fanout + 1 each round: n hosts have it after 1 + ceil(log(n) / log(fanout + 1))
rounds, and the controller sends each artifact once, however many hosts there are.
A small artifact (`direct`: a code bundle of a few commits) is not worth a round of
servers: the controller sends it to every host that needs it, in the first round.
"""
CONTROLLER = "controller"


def next_round(needs, holders, fanout, peers=True, direct=frozenset()):
    """One round: {receiver: {sha256: source}}, a source being CONTROLLER or a host.

    `needs`: {host: [sha256, ...]} what each host still lacks (in host order);
    `holders`: {sha256: [host, ...]} the hosts that hold it and can serve it.
    Without `peers` every host gets all it lacks from the controller. Otherwise the
    controller sends only what no host holds, each once, preferring a host it already
    sends to (fewer uploads) then the one that lacks the most of those; the rest comes
    from holders, each serving at most `fanout` receivers, a receiver taking from a
    source it already has this round where it can, else the least busy holder with the
    most of what it lacks. A receiver gets what it can this round, the rest later.
    The `direct` artifacts come from the controller to every host that lacks them.
    """
    if not peers:
        return {host: {sha: CONTROLLER for sha in shas} for host, shas in needs.items() if shas}
    plan = {}
    for host, shas in needs.items():
        for sha in shas:
            if sha in direct:
                plan.setdefault(host, {})[sha] = CONTROLLER
    unheld = [sha for sha in dict.fromkeys(s for shas in needs.values() for s in shas)
              if not holders.get(sha) and sha not in direct]
    for sha in unheld:
        wanting = [host for host, shas in needs.items() if sha in shas]
        seed = next((host for host in wanting if host in plan), None) or max(
            wanting, key=lambda host: sum(1 for s in needs[host] if s in unheld))
        plan.setdefault(seed, {})[sha] = CONTROLLER
    load = {}
    holding = {sha: set(hosts) for sha, hosts in holders.items()}
    for host, shas in needs.items():
        for sha in shas:
            mine = plan.get(host, {})
            candidates = [s for s in holders.get(sha, ()) if s != host]
            if sha in mine or not candidates:
                continue
            source = next((s for s in candidates if s in mine.values()), None)
            if source is None:
                free = [s for s in candidates if load.get(s, 0) < fanout]
                if not free:
                    continue
                lacking = [s for s in shas if s not in mine]
                source = min(free, key=lambda s: (load.get(s, 0), -sum(1 for x in lacking if s in holding.get(x, ()))))
                load[source] = load.get(source, 0) + 1
            plan.setdefault(host, {})[sha] = source
    return plan


def after(plan, needs, holders):
    """(needs, holders) once every transfer of `plan` succeeded."""
    got = {host: set(assigned) for host, assigned in plan.items()}
    left = {host: [s for s in shas if s not in got.get(host, ())] for host, shas in needs.items()}
    held = {sha: list(hosts) for sha, hosts in holders.items()}
    for host, shas in got.items():
        for sha in shas:
            held.setdefault(sha, []).append(host)
    return {host: shas for host, shas in left.items() if shas}, held


def servers_after(plan, needs, holders):
    """The receivers of `plan` worth serving afterwards: each will hold something a
    host still needs once `plan` is done (so a last round's receivers start no server)."""
    left, _ = after(plan, needs, holders)
    wanted_later = {sha for shas in left.values() for sha in shas}
    return {host for host, assigned in plan.items() if wanted_later & set(assigned)}


def rounds(needs, holders, fanout, peers=True, direct=frozenset()):
    """Every round of a delivery where every transfer succeeds (what `plan=yes` could show,
    and what the tests check the fan-out against)."""
    made = []
    needs = {host: list(shas) for host, shas in needs.items() if shas}
    while needs:
        plan = next_round(needs, holders, fanout, peers, direct)
        if not plan:
            raise ValueError(f"nothing can be sent to {', '.join(needs)}")
        made.append(plan)
        needs, holders = after(plan, needs, holders)
    return made
