"""A PythonModel for the rollout tests, shipped to the scoring server through ``code_paths``: it answers its
warm-up and the smoke test, then fails every request (a version that breaks under real traffic only)."""

from __future__ import annotations

import mlflow.pyfunc


class FailsUnderTraffic(mlflow.pyfunc.PythonModel):
    answered_before_failing = 2  # the server's warm-up and the pipeline's smoke test

    def load_context(self, context):
        self.calls = 0

    def predict(self, context, model_input, params=None):
        self.calls += 1
        if self.calls > self.answered_before_failing:
            raise RuntimeError("this version breaks under traffic")
        return [0] * len(model_input)
