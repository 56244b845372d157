"""Shared by the benchmarks: they run against the sandbox fleet (`bash scripts/sandbox.sh`)."""
import os
import subprocess
import sys
import time

PROJECT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FAB = os.path.join(PROJECT, ".venv", "bin", "fab")
sys.path.insert(0, os.path.join(PROJECT, "tests"))
sys.path.insert(0, PROJECT)


def fab(*args, environ=None, environment="sandbox"):
    """Run `fab <environment> <args>` (CI=true, plus `environ`); return (seconds, result)."""
    started = time.monotonic()
    result = subprocess.run([FAB, environment, *args], cwd=PROJECT, capture_output=True, text=True,
                            env={**os.environ, "CI": "true", **(environ or {})},
                            stdin=subprocess.DEVNULL, timeout=600)
    if result.returncode != 0:
        sys.exit(f"fab {environment} {' '.join(args)} failed:\n{result.stdout[-2000:]}\n{result.stderr}")
    return time.monotonic() - started, result


def require_sandbox():
    from fab import sandbox

    if not os.path.exists(sandbox.SANDBOX.state_file):
        sys.exit("the sandbox is not running: run `bash scripts/sandbox.sh` first")
    return sandbox
