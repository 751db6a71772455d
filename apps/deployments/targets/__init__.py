from apps.deployments.targets.base import (
    CANDIDATE,
    PRIMARY,
    DeploymentTarget,
    Readiness,
    ServingSpec,
    TrafficSplit,
    configured_target,
    get_target,
    rollout_time_limit,
)

__all__ = [
    "CANDIDATE",
    "PRIMARY",
    "DeploymentTarget",
    "Readiness",
    "ServingSpec",
    "TrafficSplit",
    "configured_target",
    "get_target",
    "rollout_time_limit",
]
