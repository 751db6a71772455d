from django.db import models


class DeployTarget(models.TextChoices):
    LOCAL = "local", "Local process"
    KUBERNETES = "kubernetes", "Kubernetes"


class ImageBuilder(models.TextChoices):
    LOCAL = "local", "Local (buildah)"
    ACR = "acr", "Azure Container Registry"
    KANIKO = "kaniko", "Kaniko job in cluster"
