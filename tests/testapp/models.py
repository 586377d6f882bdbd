from django.db import models


class SideEffect(models.Model):
    """A row a task writes, so a test can count how many times a task really ran."""

    key = models.CharField(max_length=100)
    value = models.TextField(blank=True, default="")
    pid = models.IntegerField(default=0)
    created = models.DateTimeField(auto_now_add=True)
