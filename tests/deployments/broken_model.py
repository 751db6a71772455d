"""A pyfunc model pickled by reference to this test module, so a scoring server outside the test suite
cannot import it and exits: a real "the container crashes on start" for rollback tests."""

from __future__ import annotations

import mlflow.pyfunc


class UnimportableModel(mlflow.pyfunc.PythonModel):
    def predict(self, context, model_input, params=None):
        return model_input
