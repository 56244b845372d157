"""A plan (`plan=yes`) as lines people read: the same lines in plain output and in
the live view, each with a style the live view (or a colour console) applies.

Works from the PlanMade event's data alone (`fab.plan.Plan.to_dict()`).
"""
from fab import waves as wave_plan
from fab.transfer import human_bytes

VIRTUALENV_STYLES = {"reused": "green", "built": "yellow", "skipped": "dim", "unknown": "yellow",
                     "fails": "bold red", "none": "dim"}
CONFIG_STYLES = {"changed": "yellow", "added": "green", "removed": "red", "unchanged": "dim"}


def plan_lines(plan):
    """[(text, style or None)] for a plan, top to bottom."""
    lines = [(f"PLAN for {plan['task']}: what it would do (nothing was changed on any host)", "bold")]

    def field(label, text, style=None):
        lines.append((f"  {label:<10}{text}", style))

    def indented(text, style=None, depth=14):
        lines.append((" " * depth + text, style))

    if plan["release"]:
        named = " (a new release, named when the deploy starts)" if plan["new_release"] else ""
        field("release", f"{plan['release']}{named}")
        field("commit", f"{plan['commit']} ({plan['ref']})" if plan["ref"] else plan["commit"])
    if plan["task"] == "rollback":
        live = plan["live_release"]
        field("live", "differs between hosts (each host's, if newer, kept, marked rolled_back)" if not live
              else f"{live} (kept, marked rolled_back)" if live > plan["release"]
              else f"{live} (kept, as it is: the rollback goes to a newer release)")
    elif plan["release"]:
        first = all(host["current"] is None for host in plan["hosts"].values())
        field("live", plan["live_release"] or ("none (a first deploy)" if first else "differs between hosts"))
    if plan["commits"]:
        heading, shown = commits_heading(plan["task"], plan["commits"])
        field("commits", heading)
        for line in shown:
            indented(line)
    if plan["waves"]:
        field("waves", wave_plan.describe([wave_plan.Wave(w["name"], tuple(w["hosts"])) for w in plan["waves"]]))
    for gate in plan.get("gates", ()):
        field("gate", f"{gate} (between waves)")
    if plan.get("pause"):
        field("pause", "after the canary, until `deploy:resume=yes`")
    for name, host in plan["hosts"].items():
        current = host["current"] or "no release"
        moves = f" -> {host['goes_to']}" if host["goes_to"] else ""
        lines.append((f"  {name:<10}current {current}{moves}", "bold"))
        if host["virtualenv"]:
            venv = host["virtualenv"]
            key = f" venv {venv['key']}" if venv["key"] else ""
            lines.append((f"    virtualenv  {venv['action']}{key}: {venv['reason']}",
                          VIRTUALENV_STYLES.get(venv["action"])))
        if host.get("wheels"):
            lines.append((f"    wheels      {wheels_line(host['wheels'])}", None))
        if host["configs"] is not None:
            lines += config_lines(host["configs"])
        if host.get("programs"):
            moves = ", ".join(f"{program} {move}" for program, move in host["programs"].items())
            lines.append((f"    programs    {moves}", None))
        if host["deletes"] or plan["task"] != "rollback":
            deleted = ", ".join(host["deletes"]) or "nothing"
            lines.append((f"    cleanup     deletes {deleted}", None))
    for warning in plan["warnings"]:
        lines.append((f"warning: {warning}", "yellow"))
    if plan.get("problems"):
        lines += problem_lines(plan["problems"])
    return lines


def problem_lines(problems, hosts=None):
    """[(text, style)] of the preflight's problems (fab.preflight.Problem.to_dict()s),
    one line each with its fix; with `hosts` (the hosts checked) a last line for
    when none has any."""
    lines = [(f"problem: {p['host']}: {p['problem']}; fix: {p['fix']}", "bold red") for p in problems]
    if hosts is not None and not problems:
        lines.append((f"ready: {len(hosts)} host{'s' if len(hosts) != 1 else ''} checked "
                      f"({', '.join(hosts)}), no problem found", "green"))
    return lines


def wheels_line(wheels):
    """What a host's store receives, in a few words."""
    action = wheels["action"]
    if action == "reused":
        return f"reused (venv {wheels['key']} is there)"
    if action == "to_build":
        return f"venv {wheels['key']}: built once when the deploy runs (not in the controller's cache yet)"
    if action == "receives":
        if not wheels["count"]:
            return f"venv {wheels['key']}: has every wheel in its store"
        names = f": {', '.join(wheels['names'])}" if wheels["names"] else ""
        return (f"venv {wheels['key']}: receives {wheels['count']} wheel{'s' if wheels['count'] != 1 else ''} "
                f"({human_bytes(wheels['bytes'])}){names}")
    return action


def commits_heading(task, commits):
    """(the line about the commits, the commit lines under it)."""
    if commits["error"]:
        return f"unknown: {commits['error']}", []
    shown = list(commits["shown"]) + ([f"... {commits['more']} more"] if commits["more"] else [])
    total = commits["total"]
    if task == "rollback":
        return f"{total} rolled back (in the live release, not in the target)" + (":" if total else ""), shown
    if commits["since"] is None:
        return f"{total} in its history (no live release to compare with):", shown
    heading = f"{total} new since the live commit {commits['since'][:12]}" if total else \
        f"nothing new since the live commit {commits['since'][:12]}"
    if commits["dropped"]:
        heading += f"; {commits['dropped']} of the live commits are not in it (they go away)"
    return heading + (":" if total else ""), shown


def config_lines(configs):
    if not configs:
        return [("    configs     none (no service with a template on this host)", None)]
    lines = []
    for index, config in enumerate(configs):
        label = "configs" if index == 0 else ""
        change = config["change"]
        if change == "unchanged":
            change = "unchanged (apart from the release name and path)"
        lines.append((f"    {label:<12}{config['file']}: {change}", CONFIG_STYLES.get(config["change"])))
        for line in config["diff"]:
            lines.append((" " * 18 + line, diff_style(line)))
        if config["more"]:
            lines.append((" " * 18 + f"... {config['more']} more lines", "dim"))
    return lines


def diff_style(line):
    if line.startswith(("+++", "---")):
        return "bold"
    if line.startswith("@@"):
        return "cyan"
    return {"+": "green", "-": "red"}.get(line[:1])
