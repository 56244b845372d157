"""fab/remote/serve.sh and batch.sh run here as a host runs them (bash, no SSH): a
session's batches share one scratch directory, made once, gone when the session ends,
and a batch never keeps its files in one that is not its own."""
import glob
import os
import pwd
import subprocess
import time

from fab import shell, steps
from fab.steps import Step


def served(process, token, script, args=()):
    """Run one command in a running serve.sh; its stdout up to the end line."""
    command = shell.with_arguments(script, args).encode()
    process.stdin.write(b"%s %d\n%s" % (token, len(command), command))
    process.stdin.flush()
    out = b""
    while b"@@fab-done " + token + b" " not in out or not out.endswith(b"\n"):
        out += os.read(process.stdout.fileno(), 65536)
    return out.decode()


def test_a_session_s_batches_share_a_scratch_directory_gone_when_the_session_ends(tmp_path):
    process = subprocess.Popen(["bash", "-c", shell.remote_script("serve"), "fab"], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env={**os.environ, "TMPDIR": str(tmp_path)})
    try:
        batch = steps.on_host([Step("first", "echo one"), Step("where", 'echo "$fab_tmp"')])
        first = served(process, b"a1", *batch)
        scratch = glob.glob(str(tmp_path / "fab-steps.*"))
        assert len(scratch) == 1 and "@@fab-step ok where " in first and first.count(scratch[0]) == 1
        assert oct(os.stat(scratch[0]).st_mode & 0o777) == "0o700"
        second = served(process, b"a2", *batch)
        assert glob.glob(str(tmp_path / "fab-steps.*")) == scratch and scratch[0] in second
    finally:
        process.stdin.close()
        process.wait(timeout=10)
    assert os.listdir(tmp_path) == []


def test_a_batch_keeps_nothing_in_a_scratch_directory_not_its_own(tmp_path):
    foreign, link = tmp_path / "foreign", tmp_path / "link"
    foreign.mkdir(mode=0o777)
    nobody = pwd.getpwnam("nobody")
    os.chown(foreign, nobody.pw_uid, nobody.pw_gid)
    (tmp_path / "mine").mkdir()
    link.symlink_to(tmp_path / "mine")
    for given in (foreign, link):
        result = subprocess.run(["bash", "-c", steps.compose([Step("where", 'echo "$fab_tmp"')])],
                                capture_output=True, text=True, timeout=30,
                                env={**os.environ, "TMPDIR": str(tmp_path), "fab_serve_scratch": str(given)})
        assert result.returncode == 0, result.stderr
        used = result.stdout.split()[-1]
        assert used.startswith(str(tmp_path / "fab-steps.")) and not os.path.exists(used)  # its own, removed
    assert os.listdir(foreign) == [] and os.listdir(tmp_path / "mine") == []


def test_a_command_printed_at_end_prints_nothing_before_it_ends_then_all_of_it_with_its_status(tmp_path):
    process = subprocess.Popen(["bash", "-c", shell.remote_script("serve"), "fab"], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env={**os.environ, "TMPDIR": str(tmp_path)})
    try:
        script = shell.printed_at_end('echo "one $1"\nsleep 0.5\necho two\nexit 3')
        command = shell.with_arguments(script, ["it's"]).encode()
        sent = time.monotonic()
        process.stdin.write(b"t1 %d\n%s" % (len(command), command))
        process.stdin.flush()
        out = os.read(process.stdout.fileno(), 65536).decode()
        assert time.monotonic() - sent >= 0.5 and out.startswith("one it's\n")  # not before the script's end
        while not out.endswith("\n") or "@@fab-done t1 " not in out:
            out += os.read(process.stdout.fileno(), 65536).decode()
        assert out == "one it's\ntwo\n@@fab-done t1 3\n"
        assert served(process, b"t2", shell.printed_at_end("true")) == "@@fab-done t2 0\n"  # nothing: no line
    finally:
        process.stdin.close()
        process.wait(timeout=10)
