"""A symlink-atomic release deployer for Python web applications.

`fab/operations/` holds role-scoped remote operations; `fab/tasks.py` composes
them into tasks. Everything else in this package is pure logic or plumbing.
"""
import os

__version__ = "0.1.0"

#: The deployer's own checkout (fabfile.py, tests/, bench/), when run from one.
PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

#: What ships inside the package: the stock templates, the built-in `sandbox`
#: environment and the sandbox's sample app. A deploy folder of its own.
BUILTIN_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "builtin")
