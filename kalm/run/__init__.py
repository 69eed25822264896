"""The run layer: a profile, its run directory, the step records and their lineage.

Above the domain library (it composes the libraries' configs and knows where a run keeps their outputs),
below the steps (``tasks/``), the flows and the CLI, which ask it instead of deciding paths themselves.
"""
