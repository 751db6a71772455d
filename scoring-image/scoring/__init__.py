"""MLflow-compatible scoring server with dynamic micro-batching.

Run as ``python -m scoring serve MODEL_DIR --port P``. Never imports Django.
"""

__version__ = "0.1.0"
