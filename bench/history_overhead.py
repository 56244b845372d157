"""What recording costs a task: publishing events with and without the history recorder,
and how soon a follower sees a line. No fleet needed (a SQLite store in a temporary dir).

    .venv/bin/python bench/history_overhead.py [--events N] [--url URL]

A deploy on 4 hosts publishes a few hundred events; publishing happens in the task's
threads, so its cost per event is what a deploy pays. The recorder only appends to
memory there; its flusher thread writes every 0.5 s.
"""
import argparse
import os
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from fab import events, history  # noqa: E402
from fab.settings import Environment  # noqa: E402
from fab.precedence import HISTORY_URL_VARIABLE  # noqa: E402

ENV = Environment.model_validate({"name": "bench", "app": {"repo": "/dev/null"}, "code_root": "/srv/bench",
                                  "roles": {"webworkers": ["web1", "web2", "web3", "web4"]}})


def step_events(count):
    for number in range(count // 2):
        host = ENV.hosts[number % 4]
        yield events.StepStarted(host, f"step{number % 12}")
        yield events.StepFinished(host, f"step{number % 12}", events.OK, note="done", seconds=0.1)


def run(count, with_recorder):
    stream = events.Stream()
    if with_recorder:
        stream.subscribe(history.recorder(ENV))
    stream.publish(events.TaskStarted("deploy", ENV.name, {}, "bench@here", "here", tuple(ENV.hosts)))
    costs = []
    for event in step_events(count):
        started = time.perf_counter()
        stream.publish(event)
        costs.append(time.perf_counter() - started)
    stream.publish(events.TaskFinished(events.SUCCEEDED, 0, seconds=1.0))
    return costs


def follower_delay(store):
    """Seconds between publishing a line and it being readable from the store."""
    stream = events.Stream()
    stream.subscribe(history.recorder(ENV))
    stream.publish(events.TaskStarted("deploy", ENV.name, {}, "bench@here", "here", tuple(ENV.hosts)))
    operation = store.operation(ENV.name)["id"]
    seen = len(store.log_lines(operation))
    stream.stage("a line to follow")
    published = time.monotonic()
    while len(store.log_lines(operation)) == seen and time.monotonic() - published < 10:
        time.sleep(0.01)
    delay = time.monotonic() - published
    stream.publish(events.TaskFinished(events.SUCCEEDED, 0, seconds=1.0))
    return delay


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--url", help="a store URL (default: a temporary SQLite file)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        os.environ[HISTORY_URL_VARIABLE] = args.url or f"sqlite:///{directory}/history.sqlite"
        store = history.open_store(ENV)
        bare = run(args.events, with_recorder=False)
        recorded = run(args.events, with_recorder=True)
        for label, costs in (("publish, no recorder", bare), ("publish, with recorder", recorded)):
            print(f"{label:<24} median {statistics.median(costs) * 1e6:7.1f} us  "
                  f"p99 {sorted(costs)[int(len(costs) * 0.99)] * 1e6:8.1f} us  ({len(costs)} events)")
        delays = [follower_delay(store) for _ in range(5)]
        print(f"{'line readable after':<24} median {statistics.median(delays):7.2f} s   max {max(delays):.2f} s")
        store.engine.dispose()


if __name__ == "__main__":
    main()
