"""The handler ``ferroq worker --processes`` runs in the multi-process benchmark row
(``peer_ferroq.py --processes``): the ``noop`` task of every peer, burning ~0.5 ms of
pure-Python work first in the ``cpu`` scenario (``FERROQ_BENCH_SCENARIO``)."""

from __future__ import annotations

import os

import _common

from ferroq import ServeMux, Task

CPU = os.environ.get("FERROQ_BENCH_SCENARIO") == "cpu"

mux = ServeMux()


@mux.handle("noop")
def noop(task: Task) -> None:
    """Counted in Redis by the server (asynq's processed counter), not here."""
    if CPU:
        _common.burn()
