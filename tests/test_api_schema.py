"""A schemathesis run against the app's OpenAPI document: no 500, no response outside the schema.

The run carries an admin token, so every operation, the mutations included, is reached past authentication. It
calls ``create_app(settings)`` in this process (schemathesis' ASGI transport: the app's lifespan, routes,
middleware and error handlers, without a socket), over a real registry and job database; the jobs it starts are
real processes.
"""

import itertools

import pytest
import schemathesis
from conftest import ONE_THREAD_ENV, make_token
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.python.asgi import HOST, shutdown_lifespans
from starlette.testclient import TestClient

from fitness_weights_api import ModelRegistry
from fitness_weights_api.app import create_app
from fitness_weights_api.settings import ServiceSettings

MAX_EXAMPLES = 20  # per operation and generation mode; the whole run takes about 10 s on a 2-core machine
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]


@pytest.fixture(scope="module")
def app_and_auth(tmp_path_factory, tiny_models):
    """The app (its lifespan is schemathesis' to start) and an admin token's header."""
    home = tmp_path_factory.mktemp("schema_service")
    # generated training jobs stay tiny: at most 256 steps, one running, two waiting; the host is schemathesis'
    service = ServiceSettings(home=home, max_timesteps=256, max_jobs=1, max_queued=2, allowed_hosts=(HOST,))
    registry = ModelRegistry(service.registry_root, service.registry_url)
    registry.register(tiny_models["attn0"], training_config={}, activate=True)
    registry.register(tiny_models["mlp"], training_config={})
    app = create_app(service)
    jobs = app.state.service.jobs
    jobs.env = {**jobs.env, **ONE_THREAD_ENV}  # as InProcessApi: tiny jobs, one thread each
    yield app, {"Authorization": f"Bearer {make_token(home)}"}
    shutdown_lifespans()  # schemathesis started the app's lifespan (its job refresher) with the first call
    for job in jobs.list(limit=1000):
        if job.state in ("queued", "running"):
            jobs.cancel(job.job_id)


def test_every_operation_conforms_to_the_schema(app_and_auth):
    app, auth = app_and_auth
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 11
    failures = []
    for operation, mode in itertools.product(operations, GenerationMode):

        @given(case=operation.as_strategy(mode))
        @settings(max_examples=MAX_EXAMPLES, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
        def conforms(case):
            case.call_and_validate(headers=auth, checks=CHECKS, timeout=120)

        try:
            conforms()
        except Unsatisfiable:  # an operation without parameters or body has no invalid request to make
            assert mode is GenerationMode.NEGATIVE, operation.label
        except Exception as error:  # collect every operation's failure, then report them together
            failures.append(f"{operation.label} ({mode.value}): {error}")
    assert not failures, "\n\n".join(failures)
    # the run reached the models, not only the validation: some generated trainees were answered
    metrics = TestClient(app).get("/metrics", headers=auth).text  # outside a `with`: no second lifespan
    for route in ("/predict_weights", "/optimize_weights"):
        assert f'route="{route}",status="200"' in metrics, route
