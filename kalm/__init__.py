"""kalm-pipeline: the KaLM-Embedding-V2 recipe as an orchestrated, resumable pipeline."""

__version__ = "0.1.0"
