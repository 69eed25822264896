"""The quality harness behind ``benchmarks/quality.py``: the profiles it runs and the tables it renders."""
