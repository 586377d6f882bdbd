"""Property-based run of the whole API against its own OpenAPI schema: generated valid
and invalid requests never get a server error, and every response matches the schema.

Kept small (a few examples per operation, derandomized) so it stays fast. The schema is
generated in-process at collection (it needs no database); the requests go to the WSGI
app in this process, inside the test's transaction."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import schemathesis
from django.core import signals
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from drf_spectacular.renderers import OpenApiJsonRenderer
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from djq import states
from djq.api.views import openapi_schema
from tests.rows import ALL_DJQ_PERMISSIONS, grant, make_task, make_worker

AUTH = {"Authorization": "Basic " + base64.b64encode(b"fuzz:fuzz-pw").decode()}

schema = schemathesis.openapi.from_dict(
    json.loads(OpenApiJsonRenderer().render(openapi_schema("api/djq/"))))
schema.app = get_wsgi_application()


@pytest.fixture
def api_data(db: None, django_user_model: Any, allow: Callable[..., None]) -> Iterator[None]:
    """A staff user for Basic auth, allow-listed tasks, rows to act on; and the database
    connection kept open between requests (the plain WSGI app would close it when a
    request ends, and the test's transaction with it; Django's test client does the same)."""
    grant(django_user_model.objects.create_user("fuzz", password="fuzz-pw", is_staff=True),
          *ALL_DJQ_PERMISSIONS)
    allow("tests.testapp.tasks.add", "tests.testapp.tasks.echo")
    for state in (states.PENDING, states.STARTED, states.SUCCESS, states.FAILURE):
        make_task(state)
    make_worker()
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    yield
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


@pytest.mark.timeout(300)
@pytest.mark.usefixtures("api_data")
@schema.parametrize()
@settings(max_examples=12, deadline=None, derandomize=True,
          suppress_health_check=list(HealthCheck))
def test_api_has_no_server_error(case: Any) -> None:
    case.call_and_validate(headers=AUTH,
                           checks=[not_a_server_error, response_schema_conformance])
