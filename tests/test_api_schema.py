"""A schemathesis run against the served OpenAPI document: no 500, no response outside the schema.

The run carries an admin token, so every operation, the mutations included, is reached past authentication.
"""

import itertools

import httpx
import pytest
import schemathesis
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

from fitness_weights_api import ModelRegistry
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
def schema_server(tmp_path_factory, tiny_models, api_servers):
    home = tmp_path_factory.mktemp("schema_service")
    settings = ServiceSettings(home=home)
    registry = ModelRegistry(settings.registry_root, settings.registry_url)
    registry.register(tiny_models["attn0"], training_config={}, activate=True)
    registry.register(tiny_models["mlp"], training_config={})
    # generated training jobs stay tiny: at most 256 steps, one running, two waiting
    return api_servers(home, max_timesteps=256, max_jobs=1, max_queued=2)


def test_every_operation_conforms_to_the_schema(schema_server):
    schema = schemathesis.openapi.from_url(f"{schema_server.url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 11
    failures = []
    for operation, mode in itertools.product(operations, GenerationMode):

        @given(case=operation.as_strategy(mode))
        @settings(max_examples=MAX_EXAMPLES, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
        def conforms(case):
            case.call_and_validate(headers=schema_server.auth, checks=CHECKS, timeout=120)

        try:
            conforms()
        except Unsatisfiable:  # an operation without parameters or body has no invalid request to make
            assert mode is GenerationMode.NEGATIVE, operation.label
        except Exception as error:  # collect every operation's failure, then report them together
            failures.append(f"{operation.label} ({mode.value}): {error}")
    assert not failures, "\n\n".join(failures)
    # the run reached the models, not only the validation: some generated trainees were answered
    metrics = httpx.get(f"{schema_server.url}/metrics", headers=schema_server.auth).text
    for route in ("/predict_weights", "/optimize_weights"):
        assert f'route="{route}",status="200"' in metrics, route
