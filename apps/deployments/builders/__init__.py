from apps.deployments.builders.base import BuildRequest, ImageBuilder, configured_builder, get_builder

__all__ = ["BuildRequest", "ImageBuilder", "configured_builder", "get_builder"]
