#!/usr/bin/env python
"""Django's command-line utility.

Without DATABASE_URL it uses the embedded servers of the `make run` that is running in this checkout (found in
`.data/embedded.json`), so `.venv/bin/python manage.py <command>` works next to `make run` as it is.
"""

import os
import sys

NO_DATABASE_HINT = (
    "manage.py: no database to connect to. Start the service with `make run` in this checkout (manage.py then "
    "finds its embedded PostgreSQL and Redis by itself), or set DATABASE_URL (and REDIS_URL, CELERY_BROKER_URL).\n"
)


def use_running_embedded_servers() -> bool:
    """Take the embedded servers' variables when DATABASE_URL is unset (or is theirs); True if found."""
    from config.launcher import embedded_environment

    found = embedded_environment()
    if not found:
        return False
    own = os.environ.get("DATABASE_URL")
    if own and own != found.get("DATABASE_URL"):
        return False
    for name, value in found.items():
        os.environ.setdefault(name, value)
    return True


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    configured = bool(os.environ.get("DATABASE_URL"))
    found = use_running_embedded_servers()
    from django.core.management import execute_from_command_line
    from django.db.utils import OperationalError

    try:
        execute_from_command_line(sys.argv)
    except OperationalError:
        if configured or found:
            raise
        sys.stderr.write(NO_DATABASE_HINT)
        sys.exit(1)


if __name__ == "__main__":
    main()
