"""Local emulators of the outside systems the control plane talks to, each spoken to over real HTTP by the real
client library: Kubernetes (k8s.py), Azure Container Registry and ARM (acr.py), Log Analytics (log_analytics.py),
an OpenID Connect provider (oidc.py). A new emulator of an outside system goes here too."""
