"""quart-schema reuses one TypeAdapter per type once the app is built."""

from __future__ import annotations

import quart_schema.conversion
from pydantic import BaseModel

from app.factory import create_app


class Body(BaseModel):
    name: str


def test_quart_schema_reuses_adapters() -> None:
    create_app()
    make = quart_schema.conversion.TypeAdapter
    assert make(dict) is make(dict)
    assert make(Body) is make(Body)
    assert make(Body).validate_python({"name": "x"}) == Body(name="x")
    loaded = quart_schema.conversion.model_load({"name": "y"}, Body, ValueError)
    assert loaded == Body(name="y")
    assert quart_schema.conversion.model_dump({"a": [1]}) == {"a": [1]}
