"""The ``kalm`` command (the top floor): options and printing around the flows, and server control.

Nothing below imports this package; it imports the flows, the run layer and the libraries.
"""

# isort: off
from kalm.cli import pipeline  # registered first: its commands head ``kalm --help``
from kalm.cli import catalog, evaluation, plan, server

# isort: on
from kalm.cli.app import app

__all__ = ["app", "catalog", "evaluation", "pipeline", "plan", "server"]
