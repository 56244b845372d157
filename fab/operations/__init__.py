"""Role-scoped remote operations. Each module is one concern; each public function
does one thing on one host (a `fab.hosts.Host`), in as few round trips as it can,
and says in its docstring which roles it runs on and whether a rerun is safe.
Tasks in fabfile.py fan them out with `Fleet.each`.
"""

#: Marker for operations that run on every host of the environment.
ALL_ROLES = "all"
