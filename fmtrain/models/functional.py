"""``functional``: any directed acyclic graph of Keras layers, written as named nodes.

```yaml
model:
  type: functional
  nodes:
    - {name: wide, layer: {Dense: {units: 16, activation: relu}}, inputs: [input]}
    - {name: deep, layer: {Dense: {units: 16, activation: relu}}, inputs: [wide]}
    - {name: both, layer: {Concatenate: {}}, inputs: [wide, deep]}
  outputs: [both]
```

References, duplicates, cycles and dead nodes are checked when the config is validated; layer
arguments and shapes when the model is built.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from fmtrain.config import keras_names
from fmtrain.config.base import StrictModel, check_name
from fmtrain.errors import ConfigError
from fmtrain.models.registry import MODELS, ModelParams, OutputSpec
from fmtrain.registry import describe_choices, did_you_mean


class NodeConfig(StrictModel):
    name: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    """The node's name, used by other nodes' inputs and by outputs; also the Keras layer's name."""
    layer: dict[str, dict[str, Any] | None]
    """One Keras layer by class name and its arguments: ``{Dense: {units: 8}}``."""
    inputs: list[str] = Field(min_length=1)
    """Nodes or model inputs feeding this one; several become a list (for Concatenate, Add, …)."""

    @field_validator("layer")
    @classmethod
    def _one_known_layer(cls, layer: dict) -> dict:
        if len(layer) != 1:
            raise ValueError(f"layer is a one-key map like '{{Dense: {{units: 8}}}}', found keys {sorted(layer)}")
        (name, kwargs), = layer.items()
        check_name("Keras layer", name, keras_names.LAYERS)
        return {name: dict(kwargs or {})}

    @property
    def layer_class(self) -> str:
        return next(iter(self.layer))


class FunctionalParams(ModelParams):
    type: Literal["functional"] = "functional"
    inputs: list[str] = Field(default_factory=lambda: ["input"], min_length=1)
    """Names nodes use for the model's inputs: one name for single-array data, or the data's input names."""
    nodes: list[NodeConfig] = Field(min_length=1)
    """The graph's layers, in any order."""
    outputs: list[str] = Field(min_length=1)
    """Nodes whose results leave the graph; several are flattened and concatenated (head: true only)."""
    head: bool = True
    """Append the task's output layer after the outputs (flattened); false: the output node is the last layer."""

    @field_validator("nodes")
    @classmethod
    def _valid_graph(cls, nodes: list[NodeConfig], info: ValidationInfo) -> list[NodeConfig]:
        inputs = info.data.get("inputs") or []
        names = [node.name for node in nodes]
        for name in names:
            if names.count(name) > 1:
                raise ValueError(f"two nodes are named '{name}'; node names must be unique")
            if name in inputs:
                raise ValueError(f"node '{name}' has the name of an input; rename it")
        known = [*inputs, *names]
        for index, node in enumerate(nodes):
            for ref in node.inputs:
                if ref not in known:
                    raise ValueError(
                        f"nodes.{index} ('{node.name}') takes input '{ref}', which is neither a node nor an "
                        f"input{did_you_mean(ref, known)}; known: {describe_choices(known)}"
                    )
        unused = [name for name in inputs if not any(name in node.inputs for node in nodes)]
        if unused:
            raise ValueError(f"no node takes input '{unused[0]}'; feed it to a node or remove it from inputs")
        cycle = _find_cycle({node.name: [r for r in node.inputs if r not in inputs] for node in nodes})
        if cycle:
            raise ValueError(f"the nodes form a cycle: {' → '.join(cycle)}")
        return nodes

    @field_validator("outputs")
    @classmethod
    def _outputs_are_nodes(cls, outputs: list[str], info: ValidationInfo) -> list[str]:
        nodes = info.data.get("nodes")
        if nodes is None:  # the nodes failed validation already
            return outputs
        names = [node.name for node in nodes]
        for ref in outputs:
            if ref not in names:
                raise ValueError(f"'{ref}' is not a node{did_you_mean(ref, names)}; nodes: {describe_choices(names)}")
        dead = sorted(set(names) - _ancestors(outputs, {node.name: node.inputs for node in nodes}))
        if dead:
            raise ValueError(f"nodes {dead} feed no output; remove them or add them to outputs")
        return outputs

    @model_validator(mode="after")
    def _one_output_without_head(self) -> FunctionalParams:
        if not self.head and len(self.outputs) > 1:
            raise ValueError("with head: false the graph must end in one output node; the trainer trains one output")
        return self


def _find_cycle(edges: dict[str, list[str]]) -> list[str] | None:
    """A cycle in ``node → inputs`` edges as a list of names (first == last), or None."""
    state: dict[str, str] = {}
    stack: list[str] = []

    def visit(name: str) -> list[str] | None:
        state[name] = "open"
        stack.append(name)
        for ref in edges[name]:
            if state.get(ref) == "open":
                return [*stack[stack.index(ref):], ref]
            if ref not in state:
                found = visit(ref)
                if found:
                    return found
        stack.pop()
        state[name] = "done"
        return None

    for name in edges:
        if name not in state:
            found = visit(name)
            if found:
                # Edges point from a node to its inputs; report the data's direction.
                return found[::-1]
    return None


def _ancestors(names: list[str], edges: dict[str, list[str]]) -> set[str]:
    seen: set[str] = set()
    todo = list(names)
    while todo:
        name = todo.pop()
        if name in seen or name not in edges:
            continue
        seen.add(name)
        todo.extend(edges[name])
    return seen


@MODELS.register("functional", params=FunctionalParams)
def build_functional(params: FunctionalParams, inputs, output: OutputSpec):
    """Any DAG of Keras layers as named nodes with inputs; outputs plus the task's output layer."""
    import keras

    from fmtrain.models.builders import _apply

    tensors = _bind_inputs(params, inputs)
    pending = {node.name: (index, node) for index, node in enumerate(params.nodes)}
    while pending:
        ready = [name for name, (_, node) in pending.items() if all(ref in tensors for ref in node.inputs)]
        if not ready:  # validation rules out cycles; this guards against a params object built by hand
            raise ConfigError(f"model.nodes: {sorted(pending)} wait on each other or on unknown inputs")
        for name in ready:
            index, node = pending.pop(name)
            where = f"model.nodes.{index}.layer.{node.layer_class}"
            kwargs = {"name": node.name, **node.layer[node.layer_class]}
            try:
                layer = getattr(keras.layers, node.layer_class)(**kwargs)
            except (TypeError, ValueError) as exc:
                raise ConfigError(f"{where}: {exc}") from exc
            args = [tensors[ref] for ref in node.inputs]
            tensors[name] = _apply(layer, args[0] if len(args) == 1 else args, where)
    outs = [tensors[name] for name in params.outputs]
    if not params.head:
        return outs[0]
    flat = [keras.layers.Flatten(name=f"{name}_flat")(t) if len(t.shape) > 2 else t
            for name, t in zip(params.outputs, outs, strict=True)]
    x = flat[0] if len(flat) == 1 else keras.layers.Concatenate(name="outputs")(flat)
    return keras.layers.Dense(output.units, activation=output.activation, dtype="float32", name="output")(x)


def _bind_inputs(params: FunctionalParams, inputs) -> dict[str, Any]:
    if not isinstance(inputs, dict):
        if len(params.inputs) != 1:
            raise ConfigError(
                f"model.inputs: the data has one input array, but the graph names {len(params.inputs)} inputs "
                f"{params.inputs}; name one"
            )
        return {params.inputs[0]: inputs}
    for name in params.inputs:
        if name not in inputs:
            raise ConfigError(
                f"model.inputs: the data has no input '{name}'{did_you_mean(name, inputs)}; inputs: {sorted(inputs)}"
            )
    unused = sorted(set(inputs) - set(params.inputs))
    if unused:
        raise ConfigError(f"model.inputs: the graph does not use the data's input '{unused[0]}'; add it to "
                          "inputs and feed it to a node")
    return {name: inputs[name] for name in params.inputs}
