"""Domain operations shared by views, the API, CLI commands and background jobs.

Services take the acting user (or ``None`` for the system/CLI) as an argument, ``flush()``
their changes and leave the commit to the caller: a request, a task or a CLI command
commits once.
"""
