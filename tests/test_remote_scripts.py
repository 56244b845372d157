"""The scripts of fab/remote/: each passes shellcheck with no warning."""
import glob
import os
import subprocess

import pytest

from fab import shell

SCRIPTS = sorted(glob.glob(os.path.join(shell.REMOTE_SCRIPTS, "*.sh")))


def test_there_are_scripts_to_check():
    assert len(SCRIPTS) >= 9


@pytest.mark.parametrize("path", SCRIPTS, ids=os.path.basename)
def test_the_script_passes_shellcheck(path):
    checked = subprocess.run(["shellcheck", "-s", "bash", path], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr


@pytest.mark.parametrize("path", SCRIPTS, ids=os.path.basename)
def test_what_hosts_receive_is_the_script_without_its_opening_comments(path):
    name = os.path.basename(path)[:-len(".sh")]
    sent, whole = shell.remote_script(name), open(path).read()
    if name in shell.FUNCTIONS_FIRST:  # the functions it calls come first
        functions = shell.remote_script(shell.FUNCTIONS_FIRST[name])
        assert sent.startswith(functions)
        sent = sent[len(functions):]
    assert whole.endswith(sent) and len(sent) < len(whole)
    assert all(line.startswith("#") or not line.strip() for line in whole[:-len(sent)].splitlines())
    assert sent.strip() and not sent.lstrip().startswith("#")
    parsed = subprocess.run(["bash", "-n", "-c", sent], capture_output=True, text=True)
    assert parsed.returncode == 0, parsed.stderr
