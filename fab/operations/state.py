"""Reading what a host has: its home, current release, releases and their metadata.

Runs on: all roles. Read-only, so always safe to rerun. Fetching (`read`) and
parsing (`parse`) are separate; `parse` is tested on captured output.
"""
import base64
import dataclasses
import json

from fab import shell
from fab.operations import ALL_ROLES
from fab.paths import Paths, expand_home
from fab.releases import HostRelease, ReleaseMeta

ROLES = ALL_ROLES


@dataclasses.dataclass
class HostState:
    home: str
    paths: Paths
    current: str = None
    releases: dict = dataclasses.field(default_factory=dict)  # name -> HostRelease
    steps: dict = dataclasses.field(default_factory=dict)  # name -> set of done steps
    cpus: int = 1
    lock: dict = None

    def release(self, name):
        return self.releases.get(name)


def read(host):
    """Collect the host's state in one round trip and keep it in `host.facts`."""
    root = shell.quote(host.env.code_root)
    output = host.run(
        f"""
root={root}
printf 'home %s\\n' "$HOME"
printf 'cpus %s\\n' "$(nproc 2>/dev/null || echo 1)"
if [ -L "$root/current" ]; then printf 'current %s\\n' "$(readlink "$root/current")"; fi
if [ -f "$root/.deploy-lock/owner" ]; then printf 'lock %s\\n' "$(base64 -w0 < "$root/.deploy-lock/owner")"; fi
if [ -d "$root/releases" ]; then
  for dir in "$root"/releases/*/; do
    [ -d "$dir" ] || continue
    name=$(basename "$dir")
    printf 'release %s\\n' "$name"
    if [ -f "$dir.release/meta.json" ]; then
      printf 'meta %s %s\\n' "$name" "$(base64 -w0 < "$dir.release/meta.json")"
    fi
    for step in "$dir".release/steps/*; do
      [ -e "$step" ] && printf 'step %s %s\\n' "$name" "$(basename "$step")"
    done
  done
fi
true
"""
    )
    state = parse(output, host.env.code_root)
    host.facts["state"] = state
    host.facts["paths"] = state.paths
    return state


def parse(output, code_root):
    """The HostState described by the output of `read`'s script."""
    home, current, cpus, lock = None, None, 1, None
    names, metas, steps = [], {}, {}
    for line in output.splitlines():
        kind, _, rest = line.partition(" ")
        if kind == "home":
            home = rest
        elif kind == "cpus":
            cpus = int(rest) if rest.isdigit() else 1
        elif kind == "current":
            current = rest.rstrip("/").split("/")[-1]
        elif kind == "lock":
            lock = _decode_json(rest)
        elif kind == "release":
            names.append(rest)
        elif kind == "meta":
            name, _, encoded = rest.partition(" ")
            try:
                metas[name] = ReleaseMeta.from_json(base64.b64decode(encoded).decode())
            except (ValueError, TypeError, KeyError):
                metas[name] = None  # unreadable metadata: treated as a failed release
        elif kind == "step":
            name, _, step = rest.partition(" ")
            steps.setdefault(name, set()).add(step)
    if home is None:
        raise ValueError("host state output has no home line")
    return HostState(
        home=home,
        paths=Paths(expand_home(code_root, home)),
        current=current,
        releases={name: HostRelease(name, metas.get(name)) for name in names},
        steps={name: steps.get(name, set()) for name in names},
        cpus=cpus,
        lock=lock,
    )


def _decode_json(encoded):
    try:
        return json.loads(base64.b64decode(encoded).decode())
    except ValueError:
        return {"owner": "unreadable lock file"}
