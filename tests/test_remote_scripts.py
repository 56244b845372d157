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
