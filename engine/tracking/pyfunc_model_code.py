"""MLflow "models from code" entry: MLflow copies this file into the logged model and runs it on load.

Logging by file instead of pickling a PythonModel object keeps the logged model free of cloudpickle.
"""

import mlflow.models

from engine.tracking.pyfunc import PipelinePyfunc

mlflow.models.set_model(PipelinePyfunc())
