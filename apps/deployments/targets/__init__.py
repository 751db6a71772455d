from apps.deployments.targets.base import (
    DeploymentTarget,
    Readiness,
    ServingSpec,
    configured_target,
    get_target,
    rollout_time_limit,
)

__all__ = ["DeploymentTarget", "Readiness", "ServingSpec", "configured_target", "get_target", "rollout_time_limit"]
