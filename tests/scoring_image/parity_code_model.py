"""A model from code (MLflow 3) whose signature comes from its type hints."""

import mlflow
from mlflow.pyfunc import PythonModel


class UpperModel(PythonModel):
    def predict(self, model_input: list[str], params=None) -> list[str]:
        return [s.upper() for s in model_input]


mlflow.models.set_model(UpperModel())
