"""Experiment tracking (MLflow), data/model versioning (DVC) and redaction of secrets."""
