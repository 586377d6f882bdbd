from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ("djq", "0007_periodic_tasks"),
    ]

    operations = [
        migrations.AlterModelOptions(
            name="task",
            options={"permissions": [("revoke_task", "Can revoke and terminate tasks")]},
        ),
    ]
