"""The dashboard's SVG pictures (fab.dashboard.pictures): shapes, times, waves, escaping."""
import html
import xml.etree.ElementTree as ET

import pytest
from hypothesis import given, settings, strategies as st

from fab.dashboard.pictures import bars_svg, inferred_waves, text, timeline_svg, waves_from_log

NS = "{http://www.w3.org/2000/svg}"
T0 = 1_800_000_000.0
#: Every element and attribute the pictures produce: nothing else may appear.
ELEMENTS = {"svg", "title", "g", "rect", "text", "line"}
ATTRIBUTES = {"class", "viewBox", "width", "height", "role", "aria-label", "x", "y", "x1", "x2", "y1", "y2",
              "fill", "stroke", "stroke-width", "font-size", "font-weight", "text-anchor", "data-hosts", "data-host", "data-step",
              "data-wave", "data-day", "data-points"}


def step(host, name, start, end, outcome="ok", note=None):
    return {"host": host, "step": name, "started_at": T0 + start, "finished_at": None if end is None else T0 + end,
            "outcome": outcome, "note": note, "seconds": None if end is None else end - start, "output": None}


def operation(steps, outcome="succeeded", started=0.0, finished=None, hosts=None, **extra):
    return {"id": 7, "task": "deploy", "environment": "production", "outcome": outcome,
            "started_at": T0 + started, "finished_at": None if finished is None else T0 + finished,
            "seconds": None if finished is None else finished - started, "hosts": hosts or [], "steps": steps,
            **extra}


def parse(svg_text):
    root = ET.fromstring(svg_text)
    for element in root.iter():
        assert element.tag.startswith(NS) and element.tag[len(NS):] in ELEMENTS, element.tag
        assert set(element.attrib) <= ATTRIBUTES, element.attrib
    return root


def bars(root):
    return [e for e in root.iter(NS + "rect") if "bar" in e.get("class", "").split()]


def by_class(root, cls):
    return [e for e in root.iter() if cls in e.get("class", "").split()]


DEPLOY = operation([
    step("web1", "code", 0, 2), step("web1", "venv", 2, 10), step("web1", "swap", 20, 21),
    step("web2", "code", 0.5, 3), step("web2", "venv", 3, 12, "failed", note="pip said no"),
    step("web2", "swap", 20, 22, "skipped"),
    step("db1", "code", 1, 4)], finished=40, hosts=["web1", "web2", "db1", "proxy1"])


def test_one_row_per_host_in_the_order_they_began_and_one_bar_per_step():
    root = parse(timeline_svg(DEPLOY, now=T0 + 100))
    assert root.get("class") == "timeline"
    assert root.get("data-hosts") == "4"  # proxy1 ran nothing: a row without bars
    assert [g.get("data-host") for g in by_class(root, "host")] == ["web1", "web2", "db1", "proxy1"]
    drawn = [(b.get("data-host"), b.get("data-step")) for b in bars(root)]
    assert drawn == [(s["host"], s["step"]) for s in DEPLOY["steps"]]
    assert all(b.find(NS + "title") is not None for b in bars(root))


def test_bars_sit_in_proportion_to_their_times():
    root = parse(timeline_svg(DEPLOY, now=T0 + 100))
    found = {(b.get("data-host"), b.get("data-step")): b for b in bars(root)}
    venv, code = found["web1", "venv"], found["web1", "code"]
    scale = float(venv.get("width")) / 8  # pixels per second
    assert float(code.get("width")) == pytest.approx(2 * scale, abs=0.2)
    assert float(venv.get("x")) - float(code.get("x")) == pytest.approx(2 * scale, abs=0.2)
    swap = found["web2", "swap"]
    assert float(swap.get("x")) - float(code.get("x")) == pytest.approx(20 * scale, abs=0.2)
    rows = {b.get("data-host"): float(b.get("y")) for b in bars(root)}
    assert rows["web1"] < rows["web2"] < rows["db1"]


def test_bars_are_classed_and_filled_by_outcome():
    root = parse(timeline_svg(DEPLOY, now=T0 + 100))
    found = {(b.get("data-host"), b.get("data-step")): b for b in bars(root)}
    assert found["web1", "code"].get("class") == "bar ok"
    assert found["web2", "venv"].get("class") == "bar failed"
    assert found["web2", "swap"].get("class") == "bar skipped"
    assert len({b.get("fill") for b in found.values()}) == 3
    assert "pip said no" in found["web2", "venv"].find(NS + "title").text
    labelled = {g.get("data-host"): [t.text for t in by_class(g, "bar-label")] for g in by_class(root, "host")}
    # names inside the bars wide enough (about 19 px a second here): not web1's 1 s swap
    # (the slowest bar, wide enough, holds its own label)
    assert labelled == {"web1": ["code", "venv"], "web2": ["code", "slowest: venv 9.0s", "swap"], "db1": ["code"],
                        "proxy1": []}


def test_an_unknown_outcome_shows_as_it_is():
    root = parse(timeline_svg(operation([step("web1", "code", 0, 1, outcome="put back")], finished=2),
                              now=T0 + 5))
    assert bars(root)[0].get("class") == "bar put-back"
    root = parse(timeline_svg(operation([step("web1", "code", 0, 1, outcome="weird")], finished=2), now=T0 + 5))
    assert bars(root)[0].get("class") == "bar other" and "weird" in bars(root)[0].find(NS + "title").text


def test_the_slowest_step_is_labelled_with_its_name_and_duration():
    root = parse(timeline_svg(DEPLOY, now=T0 + 100))
    (label,) = by_class(root, "slowest-label")
    assert (label.get("data-host"), label.get("data-step")) == ("web2", "venv")
    assert label.text == "slowest: venv 9.0s"
    # wide enough to hold it: inside its own bar, over no other step's
    (venv,) = [b for b in bars(root) if (b.get("data-host"), b.get("data-step")) == ("web2", "venv")]
    left, width = float(venv.get("x")), float(venv.get("width"))
    assert left < float(label.get("x")) < left + width and "bar-label" in label.get("class").split()


def test_a_slowest_bar_too_narrow_for_its_label_has_it_beside():
    quick = operation([step("web1", "code", 0, 0.5), step("web1", "venv", 0.5, 1.5), step("web2", "code", 0, 0.2)],
                      finished=60)
    root = parse(timeline_svg(quick, now=T0 + 100))
    (label,) = by_class(root, "slowest-label")
    (venv,) = [b for b in bars(root) if b.get("data-step") == "venv"]
    assert float(label.get("x")) >= float(venv.get("x")) + float(venv.get("width"))
    assert label.text == "slowest: venv 1.0s"


def test_running_steps_reach_now():
    running = operation([step("web1", "code", 0, 10), step("web1", "venv", 10, None, "running")], "running")
    found = {b.get("data-step"): b for b in bars(parse(timeline_svg(running, now=T0 + 30)))}
    assert found["venv"].get("class") == "bar running"
    scale = float(found["code"].get("width")) / 10
    assert float(found["venv"].get("width")) == pytest.approx(20 * scale, abs=0.2)
    label = by_class(parse(timeline_svg(running, now=T0 + 30)), "slowest-label")[0]
    assert label.get("data-step") == "venv" and label.text.endswith("20.0s")


def test_a_step_left_running_by_an_ended_operation_reads_interrupted_to_its_end():
    cut = operation([step("web1", "code", 0, 10), step("web1", "venv", 10, None, "running")], "interrupted",
                    finished=15)
    found = {b.get("data-step"): b for b in bars(parse(timeline_svg(cut, now=T0 + 999)))}
    assert found["venv"].get("class") == "bar interrupted"
    assert float(found["venv"].get("width")) == pytest.approx(float(found["code"].get("width")) / 2, abs=0.2)


def test_no_steps_gives_a_small_picture_saying_so():
    root = parse(timeline_svg(operation([]), now=T0))
    assert root.get("class") == "timeline" and root.get("data-hosts") == "0"
    assert "no steps recorded" in "".join(root.itertext())
    assert int(root.get("height")) < 100


def test_a_time_axis_with_a_few_ticks():
    root = parse(timeline_svg(DEPLOY, now=T0 + 100))
    labels = [t.text for t in by_class(root, "tick-label")]
    assert 3 <= len(labels) <= 9 and labels[0] == "0s" and labels[1] == "5s"


WAVED = operation([
    step("web1", "venv", 0, 5), step("web2", "venv", 0, 6), step("web3", "venv", 0, 5), step("db1", "venv", 0, 4),
    step("web1", "swap", 10, 10.1), step("web1", "restart", 10.1, 12), step("web1", "health", 12, 13),
    step("web2", "swap", 20, 20.1), step("web3", "swap", 20.05, 20.1), step("web2", "health", 20.1, 21),
    step("web3", "health", 20.1, 22)], finished=30)


def group_names(root):
    return [(g.get("data-wave"), [h.get("data-host") for h in by_class(g, "host")])
            for g in by_class(root, "wave")]


def test_explicit_waves_group_the_hosts_in_labelled_bands():
    waves = [("canary", ["web1"]), ("wave 1", ["web2", "web3"]), ("proxies", ["db1"])]
    root = parse(timeline_svg(WAVED, now=T0 + 99, waves=waves))
    assert group_names(root) == [("canary", ["web1"]), ("wave 1", ["web2", "web3"]), ("proxies", ["db1"])]
    assert [t.text for t in by_class(root, "wave-label")] == ["canary", "wave 1", "proxies"]
    bands = {g.get("data-wave"): g.find(NS + "rect") for g in by_class(root, "wave")}
    rows = {b.get("data-host"): float(b.get("y")) for b in bars(root)}
    for wave, members in waves:
        top, height = float(bands[wave].get("y")), float(bands[wave].get("height"))
        assert all(top <= rows[host] < top + height for host in members)


def test_waves_in_the_operation_detail_are_used():
    root = parse(timeline_svg({**WAVED, "waves": [["canary", ["web3"]], ["rest", ["web1", "web2", "db1"]]]},
                              now=T0 + 99))
    assert [g.get("data-host") for g in by_class(root, "host")] == ["web3", "web1", "web2", "db1"]


def test_waves_are_inferred_from_when_hosts_went_live():
    root = parse(timeline_svg(WAVED, now=T0 + 99))
    assert group_names(root) == [("wave 1", ["web1"]), ("wave 2", ["web2", "web3"]), ("other hosts", ["db1"])]


def test_one_wave_inferred_is_no_wave():
    root = parse(timeline_svg(DEPLOY, now=T0 + 100))  # web1 and web2 swapped together, db1 never did
    assert by_class(root, "wave") == [] and len(by_class(root, "host")) == 4


def test_one_wave_given_is_labelled():
    root = parse(timeline_svg(DEPLOY, now=T0 + 100, waves=[("all hosts", ["web1", "web2", "db1", "proxy1"])]))
    assert [t.text for t in by_class(root, "wave-label")] == ["all hosts"]


def test_hosts_that_went_live_together_are_one_wave_and_one_group_is_unlabelled():
    together = operation([step(h, "swap", 0.01 * i, 0.02 * i + 0.01) for i, h in enumerate(["a", "b", "c"])] +
                         [step(h, "health", 0.5, 1) for h in ["a", "b", "c"]], finished=2)
    root = parse(timeline_svg(together, now=T0 + 9))
    assert by_class(root, "wave") == [] and len(by_class(root, "host")) == 3


def test_a_put_back_is_not_a_new_wave():
    # web1 goes live, fails its health check; both go back together (a second swap)
    steps = [step("web1", "swap", 0, 1), step("web1", "health", 1, 3, "failed"), step("web2", "swap", 0.2, 1),
             step("web2", "health", 1, 2), step("web1", "swap", 5, 6), step("web2", "swap", 5, 6)]
    by_host = {}
    for s in sorted(steps, key=lambda s: s["started_at"]):
        by_host.setdefault(s["host"], []).append({**s, "start": s["started_at"], "end": s["finished_at"]})
    assert inferred_waves(by_host) == [("wave 1", ["web1", "web2"])]


def test_waves_from_the_log_line_the_rollout_writes():
    lines = [(1, "[   0.0s] fab production deploy by me on laptop"),
             (2, "[   3.2s] web1       code         ok (1.0s)"),
             (3, "[   9.9s] == waves: canary: web1 | wave 1: web2, web3 | proxies: proxy1"),
             (4, "[  10.0s] == canary: web1 going live")]
    assert waves_from_log(lines) == [("canary", ["web1"]), ("wave 1", ["web2", "web3"]), ("proxies", ["proxy1"])]
    assert waves_from_log(["== waves: all hosts: a, b"]) == [("all hosts", ["a", "b"])]
    assert waves_from_log(["nothing here", "web1 waves: no"]) == []


@pytest.mark.parametrize("hosts", [1, 200])
def test_readable_from_one_to_two_hundred_hosts(hosts):
    names = [f"web{n}.example.internal" for n in range(hosts)]
    root = parse(timeline_svg(operation([step(h, "code", n * 0.01, 5 + n * 0.01) for n, h in enumerate(names)],
                                        finished=10), now=T0 + 10))
    assert root.get("data-hosts") == str(hosts)
    heights = sorted({float(b.get("height")) for b in bars(root)})
    assert len(heights) == 1 and heights[0] >= 8
    assert float(root.get("height")) >= hosts * (heights[0] + 4)
    assert root.get("viewBox") == f"0 0 {root.get('width')} {root.get('height')}"


HOSTILE = ["<script>alert(1)</script>", '"onload="alert(1)', "]]><x/>", "a\x00b\x1b[31mc\x07", "&amp;&#0;",
           "\ud800 lone", "'single'", "<!-- x -->", "<?pi x?>", "\u202e reversed"]


@pytest.mark.parametrize("hostile", HOSTILE)
def test_hostile_store_text_comes_out_inert(hostile):
    steps = [step(hostile, hostile, 0, 5, outcome=hostile, note=hostile), step("web1", "swap", 6, 7, note=hostile)]
    for svg_text in (timeline_svg(operation(steps, task=hostile, hosts=[hostile + "2"]), now=T0 + 9),
                     timeline_svg(operation(steps), now=T0 + 9, waves=[(hostile, [hostile])]),
                     bars_svg([{"day": hostile, "deploys": 2, "failed": 1}], hostile)):
        root = parse(svg_text)
        assert "<script" not in svg_text and "<x" not in svg_text and "<!--" not in svg_text
        assert "<?pi" not in svg_text
        assert not any(element.get("onload") for element in root.iter())
    shown_hosts = [e.get("data-host") for e in by_class(parse(timeline_svg(operation(steps), now=T0 + 9)), "host")]
    assert shown_hosts == [html.unescape(text(hostile)), "web1"]  # as it was, less what XML cannot hold


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=40), st.text(max_size=40))
def test_any_text_makes_a_picture_that_parses(host, note):
    parse(timeline_svg(operation([step(host, note, 0, 1, note=note)], finished=1), now=T0 + 2))
    parse(bars_svg([{"day": note, "deploys": 1, "failed": 0}], host))


PER_DAY = [{"day": "2026-11-01", "deploys": 4, "failed": 1}, {"day": "2026-11-02", "deploys": 0, "failed": 0},
           {"day": "2026-11-03", "deploys": 2, "failed": 0}]


def test_bars_one_per_day_failures_stacked_in_proportion():
    root = parse(bars_svg(PER_DAY, "Deploys per day"))
    assert root.get("class") == "bars" and root.get("aria-label") == "Deploys per day"
    days = by_class(root, "day")
    assert [d.get("data-day") for d in days] == ["2026-11-01", "2026-11-02", "2026-11-03"]
    first = {r.get("class"): float(r.get("height")) for r in days[0].iter(NS + "rect")}
    assert first["bar ok"] == pytest.approx(3 * first["bar failed"])
    assert list(days[1].iter(NS + "rect")) == []
    (third,) = days[2].iter(NS + "rect")
    assert float(third.get("height")) == pytest.approx(2 * first["bar failed"])
    assert "4 deploy(s), 1 failed" in days[0].find(NS + "title").text
    assert [t.text for t in by_class(root, "day-label")] == ["2026-11-01", "2026-11-03"]


def test_bars_with_no_points_say_so():
    root = parse(bars_svg([], "Deploys per day"))
    assert "no data" in "".join(root.itertext())


def test_no_script_and_no_style_anywhere():
    for svg_text in (timeline_svg(DEPLOY, now=T0 + 100), bars_svg(PER_DAY, "x"), timeline_svg(WAVED, now=T0)):
        assert "style" not in svg_text and "script" not in svg_text and " on" not in svg_text


def test_the_time_runs_to_the_operations_end():
    # 10 s of steps in an operation of 40 s (a hook ran after them): the bar takes a quarter
    root = parse(timeline_svg(operation([step("web1", "code", 0, 10)], finished=40), now=T0 + 99))
    (code,) = bars(root)
    plot_right = max(float(line.get("x2")) for line in root.iter(NS + "line"))
    assert float(code.get("width")) == pytest.approx((plot_right - float(code.get("x"))) / 4, abs=0.2)
