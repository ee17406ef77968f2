"""``python -m ferroq`` is the ``ferroq`` command."""

from ferroq.cli import main

raise SystemExit(main())
