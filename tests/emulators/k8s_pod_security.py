"""Pod Security admission for the Kubernetes emulator (``k8s.py``): a Pod created in a namespace labelled
``pod-security.kubernetes.io/enforce: baseline|restricted`` is checked against that level of the Pod Security
Standards and refused with 403 Forbidden in the API server's words (k8s.io/pod-security-admission):

    pods "NAME" is forbidden: violates PodSecurity "restricted:latest": allowPrivilegeEscalation != false
    (container "c" must set securityContext.allowPrivilegeEscalation=false), ...

Baseline checks come first, then restricted ones, each group in the order of its check IDs, as the real plugin
reports them. Written from the standard (kubernetes.io/docs/concepts/security/pod-security-standards), apart from
the control plane's manifests, so a test can catch those being wrong. Workload objects (Deployments, Jobs) are not
refused: the API server only warns about their templates, and refuses the pods their controllers create.
"""

from __future__ import annotations

from typing import Any

from kmock import KubernetesError

__all__ = ["ENFORCE_LABEL", "admit_pod", "violations"]

ENFORCE_LABEL = "pod-security.kubernetes.io/enforce"
LEVELS = ("privileged", "baseline", "restricted")
# Capabilities baseline lets a container add (the container runtimes' default set).
BASELINE_CAPABILITIES = {
    "AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD", "NET_BIND_SERVICE", "SETFCAP",
    "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT",
}  # fmt: skip
# Volume types restricted allows (everything else, hostPath included, is a "restricted volume type").
RESTRICTED_VOLUMES = {
    "configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim", "projected", "secret",
}  # fmt: skip


def _containers(spec: dict[str, Any]) -> list[dict[str, Any]]:
    return [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]


def _who(names: list[str]) -> str:
    quoted = ", ".join(f'"{n}"' for n in names)
    return f"container {quoted}" if len(names) == 1 else f"containers {quoted}"


def _sc(container: dict[str, Any]) -> dict[str, Any]:
    return container.get("securityContext") or {}


def _baseline(spec: dict[str, Any]) -> list[str]:
    pod_sc = spec.get("securityContext") or {}
    containers = _containers(spec)
    found: list[str] = []
    # appArmorProfile
    unconfined = [c["name"] for c in containers if (_sc(c).get("appArmorProfile") or {}).get("type") == "Unconfined"]
    pod_unconfined = (pod_sc.get("appArmorProfile") or {}).get("type") == "Unconfined"
    if unconfined or pod_unconfined:
        who = " and ".join((["pod"] if pod_unconfined else []) + ([_who(unconfined)] if unconfined else []))
        found.append(f'forbidden AppArmor profile ({who} must not set AppArmor profile type to "Unconfined")')
    # capabilities_baseline
    added = [(c["name"], cap) for c in containers for cap in ((_sc(c).get("capabilities") or {}).get("add") or [])]
    bad = [(name, cap) for name, cap in added if cap not in BASELINE_CAPABILITIES]
    if bad:
        names = sorted({name for name, _ in bad})
        caps = ", ".join(f'"{cap}"' for _, cap in bad)
        found.append(
            f"non-default capabilities ({_who(names)} must not include {caps} in securityContext.capabilities.add)"
        )
    # hostNamespaces
    hosts = [f"{key}=true" for key in ("hostNetwork", "hostPID", "hostIPC") if spec.get(key)]
    if hosts:
        found.append(f"host namespaces ({', '.join(hosts)})")
    # hostPathVolumes
    host_paths = [v["name"] for v in spec.get("volumes") or [] if "hostPath" in v]
    if host_paths:
        label = "volume" if len(host_paths) == 1 else "volumes"
        found.append(f"hostPath volumes ({label} {', '.join(chr(34) + n + chr(34) for n in host_paths)})")
    # hostPorts
    ports = [(c["name"], p["hostPort"]) for c in containers for p in c.get("ports") or [] if p.get("hostPort")]
    if ports:
        names = sorted({name for name, _ in ports})
        found.append(f"hostPort ({_who(names)} uses hostPort {', '.join(str(p) for _, p in ports)})")
    # privileged
    privileged = [c["name"] for c in containers if _sc(c).get("privileged")]
    if privileged:
        found.append(f"privileged ({_who(privileged)} must not set securityContext.privileged=true)")
    # seccompProfile_baseline
    pod_seccomp = (pod_sc.get("seccompProfile") or {}).get("type")
    unconfined = [c["name"] for c in containers if (_sc(c).get("seccompProfile") or {}).get("type") == "Unconfined"]
    if pod_seccomp == "Unconfined" or unconfined:
        who = " and ".join(
            (["pod"] if pod_seccomp == "Unconfined" else []) + ([_who(unconfined)] if unconfined else [])
        )
        found.append(f'seccompProfile ({who} must not set securityContext.seccompProfile.type to "Unconfined")')
    return found


def _restricted(spec: dict[str, Any]) -> list[str]:
    pod_sc = spec.get("securityContext") or {}
    containers = _containers(spec)
    found: list[str] = []
    # allowPrivilegeEscalation
    escalating = [c["name"] for c in containers if _sc(c).get("allowPrivilegeEscalation") is not False]
    if escalating:
        found.append(
            f"allowPrivilegeEscalation != false ({_who(escalating)} must set "
            "securityContext.allowPrivilegeEscalation=false)"
        )
    # capabilities_restricted
    parts = []
    not_dropping = [
        c["name"] for c in containers if "ALL" not in ((_sc(c).get("capabilities") or {}).get("drop") or [])
    ]
    if not_dropping:
        parts.append(f'{_who(not_dropping)} must set securityContext.capabilities.drop=["ALL"]')
    for c in containers:
        extra = [cap for cap in (_sc(c).get("capabilities") or {}).get("add") or [] if cap != "NET_BIND_SERVICE"]
        if extra:
            caps = ", ".join(f'"{cap}"' for cap in extra)
            parts.append(f'container "{c["name"]}" must not include {caps} in securityContext.capabilities.add')
    if parts:
        found.append(f"unrestricted capabilities ({'; '.join(parts)})")
    # restrictedVolumes
    bad_volumes = []
    for volume in spec.get("volumes") or []:
        kinds = [k for k in volume if k != "name"]
        for kind in kinds:
            if kind not in RESTRICTED_VOLUMES:
                bad_volumes.append(f'volume "{volume["name"]}" uses restricted volume type "{kind}"')
    if bad_volumes:
        found.append(f"restricted volume types ({', '.join(bad_volumes)})")
    # runAsNonRoot
    pod_non_root = pod_sc.get("runAsNonRoot")
    root_ok = [
        c["name"]
        for c in containers
        if not (_sc(c).get("runAsNonRoot") is True or (pod_non_root is True and _sc(c).get("runAsNonRoot") is None))
    ]
    if pod_non_root is False or root_ok:
        found.append(f"runAsNonRoot != true (pod or {_who(root_ok or [c['name'] for c in containers])} must set "
                     "securityContext.runAsNonRoot=true)")  # fmt: skip
    # runAsUser
    as_root = [c["name"] for c in containers if _sc(c).get("runAsUser") == 0]
    if pod_sc.get("runAsUser") == 0 or as_root:
        who = " and ".join((["pod"] if pod_sc.get("runAsUser") == 0 else []) + ([_who(as_root)] if as_root else []))
        found.append(f"runAsUser=0 ({who} must not set runAsUser=0)")
    # seccompProfile_restricted
    allowed = ("RuntimeDefault", "Localhost")
    pod_type = (pod_sc.get("seccompProfile") or {}).get("type")
    unset = [
        c["name"]
        for c in containers
        if (_sc(c).get("seccompProfile") or {}).get("type") not in allowed
        and not (pod_type in allowed and "seccompProfile" not in _sc(c))
    ]
    if unset:
        found.append(
            f'seccompProfile (pod or {_who(unset)} must set securityContext.seccompProfile.type to "RuntimeDefault" '
            'or "Localhost")'
        )
    return found


def violations(level: str, spec: dict[str, Any]) -> list[str]:
    """What ``spec`` (a pod spec) does that ``level`` forbids, in the API server's order and words."""
    if level == "privileged":
        return []
    found = _baseline(spec)
    if level == "restricted":
        found += _restricted(spec)
    return found


def admit_pod(namespace: dict[str, Any] | None, pod: dict[str, Any]) -> None:
    """Raise 403 Forbidden when the namespace enforces a level the pod violates."""
    labels = ((namespace or {}).get("metadata") or {}).get("labels") or {}
    level = labels.get(ENFORCE_LABEL, "privileged")
    if level not in LEVELS:
        level = "restricted"  # an unknown level is treated as the strictest, as the plugin does with invalid labels
    found = violations(level, pod.get("spec") or {})
    if found:
        name = (pod.get("metadata") or {}).get("name", "")
        raise KubernetesError(
            status=403,
            reason="Forbidden",
            message=f'pods "{name}" is forbidden: violates PodSecurity "{level}:latest": {", ".join(found)}',
        )
