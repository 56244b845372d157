"""The wheel store's pure decisions (README › The wheel store): a host's Python
identity, which hosts need which venv key, which host builds, what a venv's
manifest says, and what pip needs to download binary wheels for another platform.

Nothing here touches a host or the network; fab.operations.wheels carries it
out, tests/test_wheels.py tests it.
"""
import base64
import binascii
import dataclasses
import hashlib
import re

from fab import host_values as values

#: Run as `<python> -S -c IDENTITY_CODE`, on a host with its state (fab/remote/state.sh)
#: and on the controller: the version line the venv key hashes (exactly what
#: `python -S -c 'import sys; print(sys.version)'` prints, base64) and what wheel
#: compatibility needs: implementation, version, ABI, platform, C library.
#: (No sysconfig: it would double the time every host's state read takes.)
IDENTITY_CODE = (
    "import binascii, os, sys\n"
    "print('pyversion', binascii.b2a_base64((sys.version + '\\n').encode(), newline=False).decode())\n"
    "try:\n    libc = os.confstr('CS_GNU_LIBC_VERSION').replace(' ', '-')\n"
    "except (AttributeError, ValueError, OSError):\n    libc = 'none'\n"
    "print('pyid', sys.implementation.name, '%d.%d' % sys.version_info[:2],"
    " (sys.implementation.cache_tag or 'none') + sys.abiflags, sys.platform + '-' + os.uname().machine,"
    " libc or 'none')\n"
)

_ID_WORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]{0,63}")
_WHEEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]*\.whl")
_SHA256 = re.compile(r"[0-9a-f]{64}")


@dataclasses.dataclass(frozen=True)
class Identity:
    """What makes a wheel built by one interpreter installable by another."""
    implementation: str  # cpython
    version: str  # 3.11
    abi: str  # cpython-311 (its cache tag and ABI flags)
    platform: str  # linux-x86_64 (sys.platform, the machine)
    libc: str  # glibc-2.36, or none

    def describe(self):
        return f"{self.implementation} {self.version} on {self.platform} ({self.libc})"


def parse_identity_line(rest):
    """The Identity a `pyid` line's words give (strict: Unreadable otherwise)."""
    words = rest.split(" ")
    if len(words) != 5 or not all(_ID_WORD.fullmatch(w) for w in words):
        raise values.Unreadable(f"python identity {values.quoted(rest)} is not five words")
    return Identity(*words)


def parse_version_line(rest):
    """The bytes the venv key hashes, from a `pyversion` line (base64)."""
    try:
        decoded = base64.b64decode(rest, validate=True)
    except (binascii.Error, ValueError):
        raise values.Unreadable(f"python version {values.quoted(rest)} is not base64") from None
    values.text(decoded.decode(errors="replace").rstrip("\n"), "python version")
    return decoded


def read_identity(output):
    """(version bytes, Identity) from IDENTITY_CODE's output; Unreadable if it lacks either."""
    version = identity = None
    for line in output.splitlines():
        kind, _, rest = line.partition(" ")
        if kind == "pyversion":
            version = parse_version_line(rest)
        elif kind == "pyid":
            identity = parse_identity_line(rest)
    if version is None or identity is None:
        raise values.Unreadable("the python identity is missing")
    return version, identity


# --- what is stored ------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Wheel:
    """One wheel file: its content's sha256 and its file name (kept as it is: pip
    reads the package's name, version and tags from it)."""
    sha256: str
    name: str


def wheel(sha256, name):
    """A Wheel, both values through the strict reader (a host may have reported them)."""
    if not _SHA256.fullmatch(sha256 or ""):
        raise values.Unreadable(f"wheel digest {values.quoted(sha256)} is not a sha256")
    if not _WHEEL_NAME.fullmatch(name or "") or len(name) > 255:
        raise values.Unreadable(f"{values.quoted(name)} is not a wheel file name")
    return Wheel(sha256, name)


def manifest_text(wheels):
    """A manifest: "<sha256> <file name>" lines, sorted by name (the same set always
    reads the same, so its digest names the set)."""
    return "".join(f"{w.sha256} {w.name}\n" for w in sorted(set(wheels), key=lambda w: (w.name, w.sha256)))


def parse_manifest(text):
    """The Wheels a manifest lists (a frozenset); Unreadable naming the first bad line."""
    found = set()
    for line in text.splitlines():
        if not line.strip():
            continue
        sha256, _, name = line.partition(" ")
        found.add(wheel(sha256, name))
    return frozenset(found)


def set_digest(wheels):
    """The 16 hex digits naming a wheel set: sha256 of its manifest (as state.sh
    computes it from a release's record, fab.paths.RELEASE_WHEELS)."""
    return hashlib.sha256(manifest_text(wheels).encode()).hexdigest()[:16]


# --- who needs what, who builds ------------------------------------------------


def hosts_by_key(keys, complete):
    """{key: [hosts that need venv `key` and lack it]}, hosts in the order given.

    `keys`: {host: the venv key it needs (None: it needs none here, e.g. its
    virtualenv step is done)}; `complete`: {host: keys of the complete venvs it has}.
    """
    wanted = {}
    for host, key in keys.items():
        if key is not None and key not in complete.get(host, ()):
            wanted.setdefault(key, []).append(host)
    return wanted


AUTO, CONTROLLER, BUILDER = "auto", "controller", "builder"


def where_to_build(setting, identity_matches, can_download):
    """Where the wheels of one key come from: CONTROLLER (build with its matching
    python), "download" (binary wheels for the hosts' platform) or BUILDER, for
    `setting` (wheels.where) given whether a controller python matches the hosts'
    identity and whether binary wheels may be downloaded for it. Returns a list
    of ways, tried in order."""
    if setting == BUILDER:
        return [BUILDER]
    ways = [CONTROLLER] if identity_matches else ["download"] if can_download else []
    if setting == CONTROLLER:
        return ways or ["download"]
    return [*ways, BUILDER]


def builder_for(needing, setting):
    """The host that builds a key's wheels: `setting` (wheels.builder) if it is one
    of the hosts `needing` it or given at all, else the first of them."""
    return setting or needing[0]


def platform_tags(identity):
    """pip's --platform values for binary wheels that run on `identity`'s platform:
    the manylinux tags its glibc allows, newest first, then the plain one."""
    system, _, arch = identity.platform.partition("-")
    plain = identity.platform.replace("-", "_").replace(".", "_")
    match = re.fullmatch(r"glibc-2\.(\d+)", identity.libc)
    if system != "linux" or not match:
        return [plain]
    newest = int(match.group(1))
    tags = [f"manylinux_2_{minor}_{arch}" for minor in range(newest, 4, -1)]
    legacy = {17: "manylinux2014", 12: "manylinux2010", 5: "manylinux1"}
    tags += [f"{name}_{arch}" for minor, name in legacy.items() if minor <= newest]
    return [*tags, plain]


def download_args(identity):
    """pip download's options for binary wheels for `identity` (another platform)."""
    short = {"cpython": "cp", "pypy": "pp"}.get(identity.implementation, identity.implementation)
    nodot = identity.version.replace(".", "")
    args = ["--only-binary=:all:", "--python-version", identity.version, "--implementation", short]
    for abi in (f"{short}{nodot}", "abi3", "none"):
        args += ["--abi", abi]
    for tag in platform_tags(identity):
        args += ["--platform", tag]
    return args


# --- identical bits ---------------------------------------------------------------


def role_wheel_sets(roles, sets):
    """{role: {"same": bool, "sets": {digest or "none": [hosts]}, "differs": [hosts]}}
    for `roles` ({role: [hosts]}) from `sets` ({host: (digest, count) of the wheel
    set its current release's venv was installed from, or None}). `differs`: the
    hosts outside the set most hosts of the role run."""
    found = {}
    for role, hosts in roles.items():
        by_set = {}
        for host in hosts:
            if host in sets:
                seen = sets[host]
                by_set.setdefault(f"{seen[0]} ({seen[1]} wheels)" if seen else "none", []).append(host)
        if not by_set:
            continue
        common = max(by_set, key=lambda digest: len(by_set[digest]))
        found[role] = {"same": len(by_set) == 1, "sets": by_set,
                       "differs": sorted(h for digest, hosts in by_set.items() if digest != common for h in hosts)}
    return found
