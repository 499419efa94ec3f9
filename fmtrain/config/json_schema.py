"""The config's JSON Schema as users write the YAML: each model type defined once as ``<Type>Model``,
no per-field titles, and the data section's keys documented in one place for editors."""

from __future__ import annotations

from typing import Any

from pydantic.json_schema import GenerateJsonSchema

from fmtrain import components
from fmtrain.config.schema import TransferFields, model_title


def as_users_write_it(schema: dict[str, Any]) -> dict[str, Any]:
    """pydantic's schema of ``Config``, with one definition per model type and ``$defs.DataConfig``:
    the data section's variants with every key any source reads, for editors that complete keys
    from ``properties``."""
    schema = _one_definition_per_model_type(schema)
    data = schema["properties"]["data"]
    schema["$defs"]["DataConfig"] = {
        "title": "DataConfig", "type": "object", "description": data.get("description", ""),
        "properties": _data_keys(), "oneOf": data["oneOf"],
    }
    schema["properties"]["data"] = {"$ref": "#/$defs/DataConfig"}
    return schema


def _data_keys() -> dict[str, dict[str, Any]]:
    """Every key of the data section → its description; a key some sources read names them."""
    names = components.SOURCES.names()
    keys: dict[str, dict[str, list[str]]] = {}
    for entry in components.SOURCES.entries():
        for key, field in entry.params.model_fields.items():
            keys.setdefault(key, {}).setdefault(field.description or "", []).append(entry.name)
    out: dict[str, dict[str, Any]] = {
        "source": {"enum": names, "description": "Data source; `fmtrain list sources` describes each."}}
    for key, meanings in keys.items():
        if key == "source":
            continue
        readers = [name for sources in meanings.values() for name in sources]
        if len(meanings) == 1 and len(readers) == len(names):
            out[key] = {"description": next(iter(meanings))}
        else:
            out[key] = {"description": "\n".join(f"{', '.join(s)}: {text}" for text, s in meanings.items())}
    return out


class KeysAsWritten(GenerateJsonSchema):
    """No per-field ``title``: "Batch Size" only repeats the key ``batch_size``; editors show the description."""

    def field_title_should_be_set(self, schema) -> bool:
        return False


def _one_definition_per_model_type(schema: dict[str, Any]) -> dict[str, Any]:
    """Define each model type once, as ``<Type>Model``, for ``model`` and ``model.encoders`` alike.

    pydantic defines a type twice: the ``model`` section's class (its params plus init_from and
    freeze) and, for multimodal encoders, the bare params class, under module-qualified names. Here
    the type's own keys are defined once, open; ``model`` adds ``TransferFields`` beside its variants,
    and every place that uses a variant closes it with ``unevaluatedProperties: false``, so unknown
    keys are still refused where pydantic refuses them.
    """
    defs = schema["$defs"]
    renamed: dict[str, str] = {}
    for entry in components.MODELS.entries():
        title = model_title(entry.name)
        for key in TransferFields.model_fields:
            del defs[title]["properties"][key]
        del defs[title]["additionalProperties"]
        for name in [n for n in defs if n.rsplit("__", 1)[-1] == entry.params.__name__]:
            del defs[name]
            renamed[name] = title
    defs["TransferFields"] = TransferFields.model_json_schema(schema_generator=KeysAsWritten)
    del defs["TransferFields"]["additionalProperties"]
    model = schema["properties"]["model"]
    model["allOf"] = [{"$ref": "#/$defs/TransferFields"}]
    titles = {model_title(name) for name in components.MODELS.names()}
    _close_model_refs(schema, {f"#/$defs/{old}": f"#/$defs/{new}" for old, new in renamed.items()},
                      {f"#/$defs/{title}" for title in titles})
    return schema


def _close_model_refs(node: Any, renamed: dict[str, str], model_refs: set[str], member: bool = False) -> None:
    """Point references to the bare params classes at the one definition, and close each use.

    A ``oneOf`` of model types is closed around the whole ``oneOf`` (and its siblings, e.g. the
    ``model`` section's ``TransferFields``), not in each member, which would refuse init_from.
    """
    if isinstance(node, list):
        for item in node:
            _close_model_refs(item, renamed, model_refs, member)
        return
    if not isinstance(node, dict):
        return
    if node.get("$ref") in renamed:
        node["$ref"] = renamed[node["$ref"]]
    members = [m for m in node.get("oneOf", []) if isinstance(m, dict)]
    if any(m.get("$ref") in renamed or m.get("$ref") in model_refs for m in members) or (
            not member and node.get("$ref") in model_refs):
        node["unevaluatedProperties"] = False
    for key, value in node.items():
        _close_model_refs(value, renamed, model_refs, member=key == "oneOf")
