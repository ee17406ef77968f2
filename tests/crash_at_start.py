"""A worker app that exits at import in a supervised worker process (``FERROQ_WORKER_INDEX`` is
set there), so ``ferroq worker --processes`` sees every child die at start. The supervisor
itself imports it fine, as it checks the import path before starting children."""

from __future__ import annotations

import os

from ferroq import ServeMux

if os.environ.get("FERROQ_WORKER_INDEX"):
    raise SystemExit(3)

mux = ServeMux()
