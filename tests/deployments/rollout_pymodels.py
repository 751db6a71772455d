"""A PythonModel for the rollout tests, shipped to the scoring server through ``code_paths``: it answers its input
example (the server's warm-up and the pipeline's smoke test) and fails every other request: a version that breaks
under real traffic only."""

from __future__ import annotations

import mlflow.pyfunc

EXAMPLE_CREDIT_LIMIT = 18000  # the sample request's, logged as the input example


class FailsUnderTraffic(mlflow.pyfunc.PythonModel):
    def predict(self, context, model_input, params=None):
        if (model_input["credit_limit"] != EXAMPLE_CREDIT_LIMIT).any():
            raise RuntimeError("this version breaks under traffic")
        return [0] * len(model_input)
