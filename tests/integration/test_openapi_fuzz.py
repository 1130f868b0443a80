"""Schema-driven fuzzing (schemathesis) of a live gateway: every answer to requests generated
from ``/openapi.json`` is documented there (status, content type, body schema) and none is a
server error. Bounded: a few dozen examples per operation, well under a minute.

Schemathesis' ``positive_data_acceptance`` is left out: a schema-valid request may still be
refused by design with a documented 422 (an ``image_url`` that does not resolve, bytes that
are not an image, a category the catalog does not have)."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from shared.db import Catalog, ImageIn, ProductIn, SourceIn
from tests.gateway_support import gateway_settings, serve
from tests.ingest_support import link_models, shared_models_dir
from tests.stack import wait_until_ready

pytestmark = [pytest.mark.integration, pytest.mark.timeout(360)]


@pytest.fixture(scope="module")
def api_schema(tmp_path_factory: pytest.TempPathFactory) -> Iterator[schemathesis.BaseSchema]:
    tmp = tmp_path_factory.mktemp("fuzz")
    catalog = Catalog(f"sqlite:///{tmp / 'catalog.sqlite3'}")
    catalog.migrate()
    source = catalog.upsert_source(SourceIn(name="acme", base_url="https://shop.example"))
    item = ProductIn(
        canonical_url="https://shop.example/p/1",
        title="Shirt",
        price=Decimal("25.00"),
        currency="EUR",
        images=(ImageIn(url="https://shop.example/i/1.jpg"),),
    )
    catalog.upsert_products(source.id, [item])
    link_models(tmp / "data", shared_models_dir(tmp_path_factory))
    real_models = gateway_settings(tmp / "data").model_copy(
        update={"detector_url": None, "embedder_url": None}
    )
    with serve(real_models, catalog) as url:
        ready = wait_until_ready(url, timeout_s=240)  # a first start exports the models
        assert ready.status_code == 200, "the gateway did not load its models in time"
        yield schemathesis.openapi.from_url(f"{url}/openapi.json")
    catalog.dispose()


def test_every_answer_is_documented_and_none_is_a_server_error(
    api_schema: schemathesis.BaseSchema,
) -> None:
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert {op.path for op in operations} >= {"/recommend", "/feedback", "/products/{product_id}"}
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=30,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
            database=None,
        )
        def fuzz(case: schemathesis.Case) -> None:
            case.call_and_validate(excluded_checks=[positive_data_acceptance])

        fuzz()
