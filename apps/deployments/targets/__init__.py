from apps.deployments.targets.base import DeploymentTarget, RolloutResult, ServingSpec, get_target

__all__ = ["DeploymentTarget", "RolloutResult", "ServingSpec", "get_target"]
