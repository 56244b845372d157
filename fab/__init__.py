"""A symlink-atomic release deployer for Python web applications.

`fab/operations/` holds role-scoped remote operations; `fabfile.py` composes
them into tasks. Everything else in this package is pure logic or plumbing.
"""
import os

#: The project directory (where fabfile.py, environments/ and templates/ live).
PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
