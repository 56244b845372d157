"""What the live view costs a deploy, next to plain lines (the issue: "must not slow a deploy").

    .venv/bin/python bench/live_view.py [--runs N] [--environment NAME]

First, with no fleet: what one step event costs the task that publishes it,
through the live view (redrawing meanwhile) and through plain lines. Then N
deploys with FAB_OUTPUT=plain and N with FAB_OUTPUT=live, alternating so
a slow moment hurts both alike. The live view is forced on although the output
is a pipe, so rich really draws every frame (into the pipe, which is read and
thrown away). Each deploy makes a new release of the same commit: the git cache
and virtualenv are reused, so the output's share of the time is as large as it
gets. Default environment: the sandbox (`bash scripts/sandbox.sh`); another one
is found through DEPLOY_ENVIRONMENTS as usual.
"""
import argparse
import os
import statistics
import time

from rich.console import Console

from _common import fab, require_sandbox
from fab import events
from fab.outputs.live import LiveView
from fab.outputs.plain import PlainLines, plain_console

OUTPUTS = ("plain", "live")
HOSTS = tuple(f"web{n}" for n in range(1, 51))


def publishing_cost(output, rounds=200):
    """Seconds one StepStarted + StepFinished pair costs the publisher, on 50 hosts."""
    stream = events.Stream()
    stream.subscribe(output)
    stream.publish(events.TaskStarted("deploy", "bench", {}, "me@here", "here", HOSTS))
    started = time.perf_counter()
    for round_ in range(rounds):
        for host in HOSTS:
            stream.publish(events.StepStarted(host, f"step{round_}"))
            stream.publish(events.StepFinished(host, f"step{round_}", events.OK, note="ok", seconds=0.1))
    took = time.perf_counter() - started
    stream.publish(events.TaskFinished(events.SUCCEEDED, 0))
    return took / (rounds * len(HOSTS))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--environment", default="sandbox")
    args = parser.parse_args()
    with open(os.devnull, "w") as devnull:
        live = publishing_cost(LiveView(Console(file=devnull, force_terminal=True, width=120)))
        plain = publishing_cost(PlainLines(plain_console(devnull)))
    print(f"one step (started + finished) costs the publisher: live view {live * 1e6:.0f} µs, "
          f"plain lines {plain * 1e6:.0f} µs")
    if args.environment == "sandbox":
        require_sandbox()
    fab("deploy", environment=args.environment)  # warm: git cache and virtualenv in place
    times = {output: [] for output in OUTPUTS}
    for _ in range(args.runs):
        for output in OUTPUTS:
            took, _ = fab("deploy", environment=args.environment, environ={"FAB_OUTPUT": output})
            times[output].append(took)
    for output in OUTPUTS:
        runs = times[output]
        print(f"deploy, FAB_OUTPUT={output:<6} median {statistics.median(runs):5.2f}s  "
              f"min {min(runs):5.2f}s  max {max(runs):5.2f}s  ({args.runs} runs)")
    difference = statistics.median(times["live"]) - statistics.median(times["plain"])
    print(f"live minus plain (medians): {difference:+.2f}s")
    fab("clean_releases", environment=args.environment)


if __name__ == "__main__":
    main()
