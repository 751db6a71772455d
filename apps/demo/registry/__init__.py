"""Demo models for the embedded default: trained for real at set-up, in seconds.

Pure scikit-learn and pandas; imports neither Django nor MLflow, so the scoring
benchmark and tests can train the same models without the control plane.
"""
