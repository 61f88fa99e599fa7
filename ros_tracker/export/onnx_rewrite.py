"""Graph rewrites for TensorRT versions that cannot take our exports as they are.

TensorRT 8.5 (JetPack 5, AGX Xavier) has no importer for ONNX ``LayerNormalization`` (added
in 8.6), and fails with "No importer registered for op: LayerNormalization". Exports keep the
single op (what 8.6+ wants, and what keeps fp16 LayerNorms accurate there), and the TensorRT
builder rewrites a copy for 8.5 only: each LayerNormalization becomes the equivalent
ReduceMean / Sub / Mul / ReduceMean / Add / Sqrt / Div / Mul / Add chain.
"""

from __future__ import annotations

from typing import List

import numpy as np

DECOMPOSED_MARK = "decomposed_layer_norm:"


def _opset(model) -> int:
    for entry in model.opset_import:
        if entry.domain in ("", "ai.onnx"):
            return int(entry.version)
    return 0


def _normalised_axes(model, node, axis: int) -> List[int]:
    if axis < 0:
        return list(range(axis, 0))
    import onnx

    inferred = onnx.shape_inference.infer_shapes(model)
    values = list(inferred.graph.value_info) + list(inferred.graph.input)
    for value in values:
        if value.name == node.input[0]:
            rank = len(value.type.tensor_type.shape.dim)
            return list(range(axis - rank, 0))
    raise ValueError(f"cannot infer the rank of {node.input[0]} for LayerNormalization axis {axis}")


class _Chain:
    """Builds the named nodes replacing one LayerNormalization."""

    def __init__(self, graph, prefix: str, axes: List[int], opset: int) -> None:
        from onnx import numpy_helper

        self.graph = graph
        self.prefix = prefix
        self.axes = axes
        self.axes_input = None
        if opset >= 18:  # ReduceMean takes its axes as an input from opset 18 on
            tensor = numpy_helper.from_array(np.array(axes, np.int64), self.name("axes"))
            graph.initializer.append(tensor)
            self.axes_input = tensor.name
        self.nodes: List = []

    def name(self, suffix: str) -> str:
        return f"{self.prefix}/{suffix}"

    def add(self, op: str, inputs: List[str], output: str, **attributes) -> str:
        # Named nodes: TensorRT names its layers after them, so the builder can find (and
        # keep in fp32) every layer that came from a LayerNorm.
        from onnx import helper

        node_name = f"{self.prefix}/{op}_{len(self.nodes)}"
        self.nodes.append(helper.make_node(op, inputs, [output], name=node_name, **attributes))
        return output

    def reduce_mean(self, source: str, output: str) -> str:
        if self.axes_input is not None:
            return self.add("ReduceMean", [source, self.axes_input], output, keepdims=1)
        return self.add("ReduceMean", [source], output, axes=self.axes, keepdims=1)


def decompose_layer_norm(model):
    """Return a copy of ``model`` (onnx.ModelProto) without LayerNormalization nodes."""
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.ModelProto.FromString(model.SerializeToString())
    opset = _opset(model)
    graph = model.graph
    rewritten = []
    for index, node in enumerate(graph.node):
        if node.op_type != "LayerNormalization" or node.domain not in ("", "ai.onnx"):
            rewritten.append(node)
            continue
        if len([o for o in node.output if o]) > 1:
            raise ValueError(f"{node.name}: LayerNormalization with Mean/InvStdDev outputs")
        attributes = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        axes = _normalised_axes(model, node, int(attributes.get("axis", -1)))
        prefix = DECOMPOSED_MARK + (node.name or f"layer_norm_{index}").replace("/", "_")
        chain = _Chain(graph, prefix, axes, opset)
        epsilon = numpy_helper.from_array(
            np.array(float(attributes.get("epsilon", 1e-5)), np.float32), chain.name("epsilon")
        )
        graph.initializer.append(epsilon)
        x, scale = node.input[0], node.input[1]
        has_bias = len(node.input) > 2 and bool(node.input[2])
        mean = chain.reduce_mean(x, chain.name("mean"))
        centred = chain.add("Sub", [x, mean], chain.name("centred"))
        squared = chain.add("Mul", [centred, centred], chain.name("squared"))
        variance = chain.reduce_mean(squared, chain.name("variance"))
        shifted = chain.add("Add", [variance, epsilon.name], chain.name("variance_eps"))
        std = chain.add("Sqrt", [shifted], chain.name("std"))
        normalised = chain.add("Div", [centred, std], chain.name("normalised"))
        scaled_name = chain.name("scaled") if has_bias else node.output[0]
        scaled = chain.add("Mul", [normalised, scale], scaled_name)
        if has_bias:
            chain.add("Add", [scaled, node.input[2]], node.output[0])
        rewritten.extend(chain.nodes)
    del graph.node[:]
    graph.node.extend(rewritten)
    onnx.checker.check_model(model)
    return model
