"""The strict reader of what a host reports (fab/host_values.py and its users), with
hostile values in every field, and git on the controller and the hosts with hostile
revisions: no SSH (the fleet's version is tests/test_hostile_metadata.py)."""
import base64
import datetime as dt
import json
import os
import subprocess
import types

import jsonschema
import pytest
from hypothesis import given, settings, strategies as st

from fab import held_lock
from fab import host_values as values
from fab import plan as plans
from fab import releases as rel
from fab import shell, steps
from fab.app_repo import RepoUnreadable, opened
from fab.operations import code, lock, plan_facts, state
from fab.outputs.summary import SCHEMA_PATH
from fab.paths import Paths
from fab.outputs.tables import releases_tables
from fab.releases import ReleaseMeta

with open(SCHEMA_PATH) as _handle:
    SCHEMA = json.load(_handle)
NOW = dt.datetime(2026, 11, 22, 3, 0, 0, tzinfo=dt.timezone.utc)
OLD, LIVE, NEW = "2026-11-20_03.00.00", "2026-11-21_03.00.00", "2026-11-22_03.00.00"


def good_meta(name=LIVE, **changes):
    data = dict(name=name, commit="a" * 40, branch="main", deployed_by="me", created_at=NOW.isoformat(),
                status="good", keep_until=None, hotfixes=[], private=False, ports=[["web", 8000]])
    data.update(changes)
    return data


#: Every field, with values a hostile host may write there.
HOSTILE = {
    "name": ["../../x", "/tmp", "2026-11-21_03.00.00/../..", "2026-11-21_03.00.00\n", "", 7, None, OLD],
    "commit": ["--upload-pack=touch /tmp/pwned;git-upload-pack", "--output=/tmp/pwned", "HEAD", "a" * 39,
               "A" * 40, "a" * 40 + "\n", "a" * 41, 0, None, ["a" * 40]],
    "branch": ["x" * 10_000, "main\x1b[2J", "a\nb", 3, None],
    "deployed_by": ["\x00", "y" * 10_000, {}, None],
    "created_at": ["yesterday", "2026-11-21T03:00:00", "2026-13-01T00:00:00+00:00", 1732158000, None, "9" * 100],
    "status": ["evil", "GOOD", "unreadable", "", None, 1],
    "keep_until": ["forever", "2026-11-21", "2026-11-21T03:00:00", 10**30, True, [], {}],
    "hotfixes": ["a line", [1], ["x\x07"], [None], {"a": 1}, ["z"] * 2000],
    "private": ["yes", 1, None],
    "ports": [[["web", 0]], [["web", 65536]], [["web", -1]], [["web", "80"]], [["web", True]], [["web", 8.5]],
              [["../x", 80]], [["web"]], [["web", 80, 1]], ["web"], {"web": 80}, [["web", 10**30]]],
}


@pytest.mark.parametrize("field, value", [(f, v) for f, hostile in HOSTILE.items() for v in hostile])
def test_every_hostile_field_makes_the_metadata_unreadable_in_one_line(field, value):
    with pytest.raises(values.Unreadable) as refused:
        ReleaseMeta.from_json(json.dumps(good_meta(**{field: value})), LIVE)
    assert "\n" not in str(refused.value) and len(str(refused.value)) < 300


def test_good_metadata_reads_and_old_fields_default():
    meta = ReleaseMeta.from_json(json.dumps(good_meta()), LIVE)
    assert (meta.name, meta.commit, meta.ports) == (LIVE, "a" * 40, (("web", 8000),))
    assert ReleaseMeta.from_json(json.dumps({k: v for k, v in good_meta().items()
                                             if k in ("name", "commit", "branch", "deployed_by", "created_at")}),
                                 LIVE).status == rel.BUILDING


@pytest.mark.parametrize("text", ["", "not json", "[]", "null", '"x"', "[" * 100_000, "{" + " " * 70_000 + "}",
                                  json.dumps({"commit": "a" * 40})],
                         ids=["empty", "text", "list", "null", "string", "deep", "huge", "partial"])
def test_metadata_that_is_not_an_object_of_ours_is_unreadable(text):
    with pytest.raises(values.Unreadable):
        ReleaseMeta.from_json(text, LIVE)


def test_metadata_naming_another_release_than_its_directory_is_unreadable():
    with pytest.raises(values.Unreadable, match=f"names release {OLD}, not its directory {LIVE}"):
        ReleaseMeta.from_json(json.dumps(good_meta(name=OLD)), LIVE)


_JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=50),
                     lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=10), inner,
                                                                                 max_size=3), max_leaves=10)


@settings(max_examples=300, deadline=None)
@given(st.fixed_dictionaries({}, optional={field: _JSON for field in HOSTILE}))
def test_any_json_reads_as_checked_metadata_or_is_unreadable(changes):
    try:
        meta = ReleaseMeta.from_json(json.dumps(good_meta(**changes)), LIVE)
    except values.Unreadable:
        return
    assert meta.name == LIVE and len(meta.commit) == 40 and int(meta.commit, 16) >= 0
    assert meta.status in rel.STATUSES
    for moment in filter(None, (meta.created_at, meta.keep_until)):
        assert dt.datetime.fromisoformat(moment).tzinfo is not None
    meta.protected_at(NOW)  # compares, whatever the host wrote
    assert all(1 <= port <= 65535 and type(port) is int for _, port in meta.ports)


# --- a host's state ---------------------------------------------------------------


def meta_line(name, data):
    return f"meta {name} {json.dumps(data)}"


def hostile_state():
    lines = ["home /home/web1", "cpus 4", f"current releases/{LIVE}"]
    for name in (OLD, LIVE, NEW):
        lines += [f"release {name}"]
    lines += [meta_line(OLD, good_meta(OLD)), meta_line(LIVE, good_meta(LIVE)),
              meta_line(NEW, good_meta(NEW, commit="--upload-pack=touch /tmp/pwned;git-upload-pack",
                                       status="building")),
              "release ../../x", meta_line("../../x", good_meta("../../x")), "release --output=x",
              "venv 2026-11-20_03.00.00 ../../../etc", "venv 2026-11-21_03.00.00 0123456789abcdef",
              "conf 2026-11-21_03.00.00 --output=x prod-web.conf", "step 2026-11-21_03.00.00 ../../x",
              "cpus many", "venvdir ../../etc", "venvdir 0123456789abcdef", "venvdir -rf"]
    return "\n".join(lines)


def test_a_hostile_state_is_read_as_data_and_each_refusal_said_in_one_line():
    parsed = state.parse(hostile_state(), "~/www/prod")
    assert set(parsed.releases) == {OLD, LIVE, NEW}  # ../../x and --output=x are not release directories
    assert parsed.releases[NEW].status == rel.UNREADABLE and parsed.releases[NEW].meta is None
    assert "is not 40 hex digits" in parsed.releases[NEW].unreadable
    assert parsed.venvs == {LIVE: "0123456789abcdef"}
    assert parsed.venv_links_unknown == {OLD}  # its link's key is no key: cleanup deletes no venv
    assert parsed.venv_dirs == {"0123456789abcdef"}
    assert parsed.configs[LIVE] == {} and parsed.steps[LIVE] == set() and parsed.cpus == 4
    assert all("\n" not in line for line in parsed.problems)
    assert sum(NEW in line and "unreadable" in line for line in parsed.problems) == 1
    assert any("'release ../../x'" in line for line in parsed.problems)


@pytest.mark.parametrize("link", ["../../x", "/etc", "releases/../../x", "releases/--output=x", "releases/"])
def test_a_current_link_outside_releases_reads_as_no_current(link):
    parsed = state.parse(f"home /h\ncurrent {link}\nrelease {LIVE}", "~/www")
    assert parsed.current is None and len(parsed.problems) == 1


def test_current_may_be_the_absolute_path_older_versions_wrote():
    assert state.parse(f"home /h\ncurrent /h/www/releases/{LIVE}/", "~/www").current == LIVE


@pytest.mark.parametrize("home", ["", "relative", "/x\x1b[2J"])
def test_a_state_without_a_usable_home_is_one_unreadable_error(home):
    with pytest.raises(values.Unreadable):
        state.parse(f"home {home}\nrelease {LIVE}", "~/www")


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(["home", "cpus", "current", "release", "meta", "conf", "venv", "venvdir", "step",
                                  "x"])
                .flatmap(lambda kind: st.text(max_size=30).map(lambda rest: f"{kind} {rest}")), max_size=12))
def test_any_state_output_reads_or_is_one_unreadable_error(lines):
    try:
        parsed = state.parse("\n".join(["home /h", *lines]), "~/www")
    except values.Unreadable:
        return
    for name in [*parsed.releases, *([parsed.current] if parsed.current else [])]:
        assert values.RELEASE_NAME.fullmatch(name)
    assert all(values.hex_digest(key, "k") for key in [*parsed.venvs.values(), *parsed.venv_dirs])


def test_an_unreadable_release_is_never_a_target_and_cleanup_leaves_it():
    """Whatever the unreadable release's metadata claimed (good, prepared, building, a
    newer name), no decision picks it, and cleanup keeps it."""
    for status in ("good", "prepared", "building"):
        parsed = state.parse("\n".join([
            "home /h", f"current releases/{LIVE}", *(f"release {n}" for n in (OLD, LIVE, NEW)),
            meta_line(OLD, good_meta(OLD, status=status, commit="--output=/tmp/x")),
            meta_line(LIVE, good_meta(LIVE)),
            meta_line(NEW, good_meta(NEW, status=status, keep_until="soon"))]), "~/www")
        found = list(parsed.releases.values())
        assert rel.previous_good_release(found, LIVE) is None
        assert rel.resumable_release(found, LIVE) is None
        assert rel.prepared_release({"web1": found}, {"web1": LIVE}, "a" * 40) is None
        assert rel.releases_to_delete(found, LIVE, keep=1, now=NOW) == []
        with pytest.raises(rel.PreflightError, match="web1: unreadable"):
            rel.rollback_target({"web1": found}, {"web1": LIVE}, OLD)
        listing = rel.host_listing(found, LIVE)
        assert [r["status"] for r in listing["releases"]] == ["unreadable", "good", "unreadable"]
        assert "not 40 hex digits" in listing["releases"][0]["why"]
        jsonschema.validate(listing, {"$defs": SCHEMA["$defs"], "$ref": "#/$defs/listing"})  # `releases:json=yes` says it too
        shown = types.SimpleNamespace(hosts={"web1": listing}, unreachable={}, drift=None, wheel_sets={})
        assert releases_tables(shown, NOW, styled=False)  # renders, reason and all


def test_an_unreadable_current_release_is_what_a_failure_puts_back():
    found = [rel.HostRelease(OLD, ReleaseMeta(OLD, "a" * 40, "main", "me", NOW.isoformat(), rel.GOOD)),
             rel.HostRelease(LIVE, None, "status 'evil' is not one of ...")]
    assert rel.fallback_release(found, LIVE) == LIVE


# --- the lock owner record, step reports, plan facts -------------------------------


def encoded(data):
    return base64.b64encode((data if isinstance(data, str) else json.dumps(data)).encode()).decode()


def test_the_lock_owner_record_keeps_only_typed_bounded_fields():
    record = lock.decode_record(encoded({"owner": "x" * 300, "machine": "laptop", "pid": "1; rm -rf ~",
                                         "task": "deploy\x1b[2J", "since": "whenever", "lock_pid": 123,
                                         "extra": "dropped"}))
    assert record == {"machine": "laptop", "lock_pid": 123}
    assert "an unknown task" == lock.describe(record)
    for junk in ("", "!!", encoded({"owner": "x" * 10_000}), encoded("[1, 2]"), encoded("null"), encoded("[" * 50_000), "A" * 100_000):
        assert lock.decode_record(junk) == {}
    good = {"owner": "me", "machine": "m", "pid": 42, "task": "deploy", "since": NOW.isoformat()}
    assert lock.decode_record(encoded(good)) == good


@pytest.mark.parametrize("released, now", [("inf", "1"), ("1", "inf"), ("nan", "1"), ("1e400", "0"), ("x", "1")])
def test_a_lock_answer_with_times_that_are_no_times_reads_as_just_now(released, now):
    assert held_lock.released_ago(released, now) == 0.0


def test_plan_facts_keep_only_hex_venv_keys():
    facts = plan_facts.parse("venv ../../etc\nvenv 0123456789abcdef\ncurrent-venv --output=x\n")
    assert facts.venvs == {"0123456789abcdef"} and facts.current_venv is None


def test_step_reports_a_host_made_up_break_nothing():
    batch = [steps.Step("code", "true")]
    output = "\n".join([f"{steps.REPORT}", f"{steps.REPORT} done", f"{steps.REPORT} done nosuch 1 2 x",
                        f"{steps.REPORT} done code notatime 2 fine"])
    done, failed = steps.parse(batch, output)
    assert [outcome.step for outcome in done] == ["code"] and failed is None


# --- git ends its options, on the controller and on the hosts ----------------------


def git(*args, cwd):
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True,
                          env={**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t",
                               "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}).stdout.strip()


@pytest.fixture
def repository(tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    git("init", "-q", "-b", "main", cwd=work)
    commits = []
    for number in range(2):
        (work / "app.py").write_text(f"print({number})\n")
        (work / f"gone{number}.txt").write_text("x\n")
        git("add", "-A", cwd=work)
        git("commit", "-q", "-m", f"change {number}", cwd=work)
        commits.append(git("rev-parse", "HEAD", cwd=work))
    bare = tmp_path / "app.git"
    git("clone", "-q", "--bare", str(work), str(bare), cwd=tmp_path)
    return str(bare), commits


def hostile_revisions(marker):
    return [f"--upload-pack=touch {marker};git-upload-pack", f"--output={marker}", f"--exec=touch {marker}"]


@pytest.mark.parametrize("as_url", [False, True])
def test_the_plan_reader_takes_no_revision_as_an_option(repository, tmp_path, as_url):
    bare, commits = repository
    marker = tmp_path / "marker"
    repo = f"file://{bare}" if as_url else bare
    for hostile in hostile_revisions(marker):
        try:
            with opened(repo, [hostile, commits[1]]) as found:
                found.has(hostile)
                found.file_at(hostile, "app.py")
                plans.read_commits(found, hostile, commits[1])
                with pytest.raises(RepoUnreadable):
                    found.log(hostile, commits[1], 5)
        except RepoUnreadable:
            pass  # a fetch of a revision that is no commit fails: an error, and nothing ran
        assert not marker.exists(), hostile


def test_the_hosts_git_commands_take_no_revision_as_an_option(repository, tmp_path):
    """The commands `code.checkout` and `code.hotfix` run on a host, run here by bash on
    a real git cache and release directory, with hostile commits."""
    bare, commits = repository
    marker = tmp_path / "marker"
    release = tmp_path / "releases" / LIVE
    release.mkdir(parents=True)

    def run(script, args=()):
        result = subprocess.run(["bash", "-c", script, "step", *args], capture_output=True, text=True)
        if result.returncode:
            raise RuntimeError(result.stderr.strip().splitlines()[-1])
        return result.stdout

    host = types.SimpleNamespace(
        env=types.SimpleNamespace(app=types.SimpleNamespace(repo=bare, fetch="hosts"), requirements=["app.py"],
                                  pip_args=[]),
        paths=Paths(str(tmp_path)), run=run)
    run(shell.script(code._checkout(host, "export", commits[1], LIVE)))
    for hostile in hostile_revisions(marker):
        for old, new in ((hostile, commits[1]), (commits[0], hostile)):
            try:  # a diff of a revision that is no commit fails; what the hotfix does then is its own
                code.hotfix(host, LIVE, old, new)
            except RuntimeError:
                pass
            with pytest.raises(RuntimeError):
                run(shell.script(code._checkout(host, "export", hostile, LIVE)))
        assert not marker.exists(), hostile
    assert (release / "gone0.txt").exists()  # nothing deleted on a hostile commit's word
