import os

from django.apps import AppConfig


class TestAppConfig(AppConfig):
    name = "tests.testapp"
    label = "testapp"

    def ready(self) -> None:
        from . import receivers

        receivers.connect()
        if os.environ.get("DJQ_TEST_WITHOUT_LIMITED_TASKS") == "1":
            # Any registered task with a time limit makes a -P threads/solo worker refuse
            # to start; tests of those pools start workers without such tasks. (djq's
            # ready() has already discovered the tasks: it comes first in INSTALLED_APPS.)
            from djq.task import registry

            for name, task in list(registry.items()):
                if task.time_limit is not None or task.soft_time_limit is not None:
                    del registry[name]
