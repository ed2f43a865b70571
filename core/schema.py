"""What drf-spectacular cannot infer about the REST API: how a caller authenticates, what the path ids are."""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension, OpenApiSerializerExtension


class BearerTokenScheme(OpenApiAuthenticationExtension):
    """`Authorization: Bearer <token>`, a token from the Auth Service (see the README)."""

    target_class = "core.rest_auth.BearerTokenAuthentication"
    name = "bearerAuth"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}


UUID_PATH_IDS = frozenset(
    {"customer_id", "address_id", "favourite_id", "line_id", "usage_id", "hold_id", "reward_id"}
)


class StrictBodyScheme(OpenApiSerializerExtension):
    """A strict input body (`core.api.StrictFieldsMixin`) says so: no other properties (`unknown_field`); and the
    rules across fields its serializer declares as JSON Schema (`schema_one_of`: exactly one branch holds,
    `schema_any_of`: at least one), which its service enforces."""

    target_class = "core.api.StrictFieldsMixin"
    match_subclasses = True

    def map_serializer(self, auto_schema: Any, direction: Any) -> dict[str, Any]:
        schema: dict[str, Any] = auto_schema._map_serializer(self.target, direction, bypass_extensions=True)
        if direction == "request":
            schema["additionalProperties"] = False
            for attribute, keyword in (("schema_one_of", "oneOf"), ("schema_any_of", "anyOf")):
                if getattr(self.target, "partial", False):  # a PATCH names only what it changes
                    break
                if branches := getattr(self.target, attribute, None):
                    schema[keyword] = branches
        return schema


def stated_constraints(result: dict[str, Any], generator: Any, **kwargs: Any) -> dict[str, Any]:
    """A postprocessing hook: the ids in the paths are UUIDs (a route answers 404 to anything else), which the
    regex routes cannot tell drf-spectacular."""
    for operations in result.get("paths", {}).values():
        for operation in operations.values():
            for parameter in operation.get("parameters", []) if isinstance(operation, dict) else []:
                if parameter.get("in") == "path" and parameter.get("name") in UUID_PATH_IDS:
                    parameter["schema"] = {"type": "string", "format": "uuid"}
    return result
