"""fab.operations.code's decision of which bundles to make (no SSH): a host whose git
cache holds the commit gets none, hosts with the same usable tips share one bundle,
a host with none gets a full one; `prepare` makes them with the controller's real
git cache (fab.app_repo) of a repository in tmp_path."""
import os
import types

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fab.operations import code
from fab.sandbox.tools import git

C, A, B, X = "c" * 40, "a" * 40, "b" * 40, "e" * 40


@pytest.mark.parametrize("tips, usable, groups", [
    ({"web1": {A}, "web2": {A}}, {A}, {frozenset({A}): ["web1", "web2"]}),
    ({"web1": {A}, "web2": {A, B}}, {A, B}, {frozenset({A}): ["web1"], frozenset({A, B}): ["web2"]}),
    ({"web1": {A, C}, "web2": set()}, {A}, {frozenset(): ["web2"]}),  # web1 holds the commit
    ({"web1": {X}, "web2": set()}, {A}, {frozenset(): ["web1", "web2"]}),  # X unknown here: a full bundle
    ({"web1": {A, X}, "web2": {A}}, {A}, {frozenset({A}): ["web1", "web2"]}),
    ({"web1": {C}}, set(), {}),
])
def test_hosts_with_the_same_usable_tips_share_one_bundle(tips, usable, groups):
    assert code.bundle_groups(C, tips, usable) == groups


commits = st.sampled_from([C, A, B, X, "d" * 40])


@given(st.dictionaries(st.sampled_from(["web1", "web2", "pillow1", "proxy1"]), st.frozensets(commits)),
       st.frozensets(commits))
def test_every_host_lacking_the_commit_is_in_exactly_one_group_of_its_own_usable_tips(tips, usable):
    groups = code.bundle_groups(C, tips, usable)
    placed = [name for names in groups.values() for name in names]
    assert sorted(placed) == sorted(name for name, held in tips.items() if C not in held)
    for bases, names in groups.items():
        assert all(bases == tips[name] & usable for name in names)
    assert len(groups) == len({tips[name] & usable for name in placed})


@pytest.fixture
def history(tmp_path):
    """Three commits of a repository: (its path, [commits, oldest first])."""
    work = tmp_path / "work"
    git("init", "--quiet", "-b", "main", str(work))
    made = []
    for number in range(3):
        (work / "app.py").write_text(f"{number}\n" + os.urandom(5000).hex())
        git("add", "app.py", cwd=work)
        git("commit", "--quiet", "-m", str(number), cwd=work)
        made.append(git("rev-parse", "HEAD", cwd=work))
    return str(work), made


def fleet_of(repo, tips, done=(), fetch="controller"):
    """A fleet as `prepare` reads it: each host's tips and which ones exported release r1."""
    hosts = {name: types.SimpleNamespace(state=types.SimpleNamespace(
        tips=frozenset(held), steps={"r1": {"code"} if name in done else set()})) for name, held in tips.items()}
    return types.SimpleNamespace(env=types.SimpleNamespace(app=types.SimpleNamespace(repo=repo, fetch=fetch)),
                                 hosts=hosts)


def test_prepare_makes_one_bundle_per_distinct_tips_and_none_where_the_cache_has_it(history, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    repo, (old, mid, new) = history
    fleet = fleet_of(repo, {"web1": {old}, "web2": {old}, "pillow1": set(), "proxy1": {new}, "web3": {mid, new},
                            "web4": {old}, "web5": {"f" * 40}})
    bundles = code.prepare(fleet, mid, "r1")
    assert set(bundles) == {"web1", "web2", "web4", "pillow1", "web5"}  # proxy1 and web3 have it (web3: a tip)
    assert bundles["web1"] == bundles["web2"] == bundles["web4"]
    assert bundles["pillow1"] == bundles["web5"]  # a tip the controller does not know: as good as none
    assert bundles["web1"].size < bundles["pillow1"].size / 1.5 and bundles["web1"].name == f"{mid}.bundle"
    assert code.prepare(fleet, mid, "r1") == bundles  # the same files again (a cut transfer goes on)
    assert code.prepare(fleet_of(repo, {"web1": {old}}, done={"web1"}), mid, "r1") == {}


def test_prepare_touches_nothing_when_every_cache_has_the_commit_or_hosts_fetch(history, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    repo, (old, _, new) = history
    assert code.prepare(fleet_of(repo, {"web1": {new}, "web2": {old, new}}), new) == {}
    assert code.prepare(fleet_of(repo, {"web1": set()}, fetch="hosts"), new) == {}
    assert not (tmp_path / "cache").exists()


def test_prepare_says_in_one_line_what_the_controller_cannot_read(tmp_path, monkeypatch):
    from fab.app_repo import RepoUnreadable

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    with pytest.raises(RepoUnreadable, match="git fetch: ") as raised:
        code.prepare(fleet_of(str(tmp_path / "missing.git"), {"web1": set()}), "a" * 40)
    assert "\n" not in str(raised.value)


def test_a_commits_time_and_subject_come_from_the_controllers_cache_or_the_local_repository(
        history, tmp_path, monkeypatch):
    from fab import app_repo

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    repo, (old, _, new) = history
    committed = float(git("show", "-s", "--format=%ct", new, cwd=repo))
    assert app_repo.describe_commit(repo, new) == (committed, "2")  # the repository is a local path
    with app_repo.holding(f"file://{repo}", old):
        pass
    assert app_repo.describe_commit(f"file://{repo}", old)[1] == "0"  # from the cache it fetched into
    assert app_repo.describe_commit("https://example.invalid/app.git", new) is None  # nothing fetched
    assert app_repo.describe_commit(repo, "f" * 40) is None


def test_a_recorded_commit_subject_is_one_masked_line_of_bounded_length():
    from fab.history.recording import COMMIT_SUBJECT_LIMIT, commit_subject

    assert commit_subject("fix\tthe  build\nmore") == "fix the build more"
    assert "hunter2" not in commit_subject("use https://deploy:hunter2@git.example/app.git")
    assert len(commit_subject("x" * 1000)) == COMMIT_SUBJECT_LIMIT
    assert commit_subject("") is None
