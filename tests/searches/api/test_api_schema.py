"""Schemathesis drives every operation of the OpenAPI schema with generated input:
no answer may be a server error. Path ids are pointed at the token owner's real
search and candidates (random ids would only ever meet a 404)."""
from __future__ import annotations

import pytest
import schemathesis
from django.core import signals
from django.core.handlers.wsgi import WSGIHandler
from django.db import close_old_connections
from drf_spectacular.generators import SchemaGenerator
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from searches import services

from factories import make_ready_bundle, make_search

RAW_SCHEMA = SchemaGenerator().get_schema(request=None, public=True)
schema = schemathesis.openapi.from_dict(RAW_SCHEMA)
APP = WSGIHandler()


def test_the_schema_documents_every_route_with_bearer_auth():
    assert RAW_SCHEMA["components"]["securitySchemes"]["apiToken"]["scheme"] == "bearer"
    paths = RAW_SCHEMA["paths"]
    assert "/api/searches/" in paths and "/api/searches/{search_id}/best/bundle/download/" in paths
    create = paths["/api/searches/"]["post"]["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    fields = RAW_SCHEMA["components"]["schemas"][create.rsplit("/", 1)[1]]["properties"]
    assert {"name", "dataset", "space", "strategy", "max_candidates", "epochs", "seed"} <= set(fields)
    assert fields["max_candidates"]["minimum"] == 1


@pytest.fixture
def world(db, alice, checkpoint_dir, tmp_path):
    search, candidates = make_search(alice, checkpoint_dir, finished=(0.8,), running=1)
    make_ready_bundle(candidates[0], tmp_path)
    key = services.api_token_create(owner=alice, name="schemathesis")[1]
    # As Django's test client does: the handler must not close the test's connection.
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    yield {"search_id": search.id, "candidate_id": candidates[0].id, "key": key}
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


@schema.parametrize()
@settings(max_examples=6, deadline=None, derandomize=True,
          suppress_health_check=list(HealthCheck))
def test_no_operation_answers_with_a_server_error(case, world):
    for name in ("search_id", "candidate_id"):
        if case.path_parameters and name in case.path_parameters:
            case.path_parameters[name] = world[name]
    case.call_and_validate(app=APP, headers={"Authorization": f"Bearer {world['key']}"},
                           checks=[not_a_server_error])
