"""The deployer's tasks (defined in fab/tasks.py, so an application's own fabfile
can import the very same ones). `fab -l` lists them; see README.md.
"""
from fab.tasks import *  # noqa: F401,F403
