from django.db import models


class DeployTargetName(models.TextChoices):
    """The deployment target an environment uses (``backends.DEPLOY_TARGETS``)."""

    LOCAL = "local", "Local process"
    KUBERNETES = "kubernetes", "Kubernetes"


class ImageBuilderName(models.TextChoices):
    """The image builder an environment uses (``backends.IMAGE_BUILDERS``), or none."""

    NONE = "none", "No image (local target)"
    LOCAL = "local", "Local (buildah)"
    ACR = "acr", "Azure Container Registry"
    BUILDAH = "buildah", "Buildah pod in cluster"  # replaced "kaniko" (migration 0004)


class InputValidation(models.TextChoices):
    """How the scoring server checks request data against the model's signature (SCORING_VALIDATION)."""

    MLFLOW = "mlflow", "as MLflow (its type coercions, unknown columns dropped)"
    STRICT = "strict", "strict (422 naming the column and type)"


class DeploymentStatus(models.TextChoices):
    PENDING = "pending", "Pending"  # first revision not live yet
    LIVE = "live", "Live"
    FAILED = "failed", "Failed"  # nothing is serving
    DELETING = "deleting", "Deleting"
    DELETED = "deleted", "Deleted"


class RevisionStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    LIVE = "live", "Live"
    SUPERSEDED = "superseded", "Superseded"  # was live, a newer revision replaced it
    FAILED = "failed", "Failed"
    ROLLED_BACK = "rolled_back", "Rolled back"  # failed, and the previous live revision serves again

    @classmethod
    def final(cls) -> set[str]:
        return {cls.LIVE, cls.SUPERSEDED, cls.FAILED, cls.ROLLED_BACK}


class RevisionKind(models.TextChoices):
    DEPLOY = "deploy", "Deploy"
    ROLLBACK = "rollback", "Roll back"


class StepName(models.TextChoices):
    RESOLVE = "resolve", "Resolve model"
    BUILD = "build", "Build image"
    PUSH = "push", "Push image"
    APPLY = "apply", "Apply"
    ROLLOUT = "rollout", "Roll out"
    SMOKE_TEST = "smoke_test", "Smoke test"
    TRAFFIC = "traffic", "Shift traffic"  # progressive delivery: canary steps, blue-green or shadow, analysed
    LIVE = "live", "Live"


class StepStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    SKIPPED = "skipped", "Skipped"
    FAILED = "failed", "Failed"


class RolloutControl(models.TextChoices):
    """What a person asked a running progressive rollout to do next (the runner acts on it at its next tick)."""

    PROMOTE = "promote", "Promote now"
    ABORT = "abort", "Abort"


class CheckVerdict(models.TextChoices):
    PASS = "pass", "Passed"
    FAIL = "fail", "Failed"
    WAIT = "wait", "Waiting for traffic"
    SKIP = "skip", "Not checked"
