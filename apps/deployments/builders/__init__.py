from apps.deployments.builders.base import BuildRequest, ImageBuilder, get_builder

__all__ = ["BuildRequest", "ImageBuilder", "get_builder"]
