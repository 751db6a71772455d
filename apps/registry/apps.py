from django.apps import AppConfig


class RegistryConfig(AppConfig):
    name = "apps.registry"
    label = "registry"

    def ready(self) -> None:
        from celery.signals import worker_init, worker_process_init

        from apps.registry.client import use_worker_budget

        worker_init.connect(lambda **_: use_worker_budget(), weak=False)
        worker_process_init.connect(lambda **_: use_worker_budget(), weak=False)
