from apps.deployments.targets.base import DeploymentTarget, Readiness, ServingSpec, configured_target, get_target

__all__ = ["DeploymentTarget", "Readiness", "ServingSpec", "configured_target", "get_target"]
