"""``python -m callvault``: the same as the ``callvault`` command."""

from callvault.bootstrap import cli

raise SystemExit(cli())
