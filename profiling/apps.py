from django.apps import AppConfig


class ProfilingConfig(AppConfig):
    name = "profiling"
    verbose_name = "Investor profiling"

    def ready(self) -> None:
        from django.contrib.auth.signals import user_logged_in

        from .services.behaviour_hooks import on_user_logged_in

        # A login spike during a drawdown is a behavioural event (docs/behaviour.md).
        user_logged_in.connect(on_user_logged_in, dispatch_uid="profiling.behaviour_login")
