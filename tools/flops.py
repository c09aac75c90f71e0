"""FLOP counts of a traced TensorFlow graph (``graph_flops``) and of a model's Dense and Conv
layers (``layer_flops``), for ``tools.benchmark``. Matrix products count 2*M*N*K, element-wise
ops one per output element, reductions one per input element."""

import collections
import dataclasses

import keras
import tensorflow as tf

# One FLOP per output element.
_ELEMENTWISE = frozenset(
    """Add AddV2 Sub Mul Div RealDiv DivNoNan Maximum Minimum Neg Square Sqrt Rsqrt Reciprocal
    Exp Expm1 Log Log1p Tanh Sigmoid Softplus Relu Relu6 LeakyRelu Elu Selu Abs Sign Floor Ceil
    Round Pow SquaredDifference BiasAdd ReluGrad LeakyReluGrad TanhGrad SigmoidGrad SqrtGrad
    RsqrtGrad ReciprocalGrad SoftplusGrad EluGrad Select SelectV2 Greater GreaterEqual Less
    LessEqual Equal NotEqual Xlogy Xdivy AssignAddVariableOp AssignSubVariableOp""".split()
)
# One FLOP per input element.
_REDUCTIONS = frozenset("Sum Mean Max Min Prod BiasAddGrad ArgMax ArgMin L2Loss".split())
_CALLS = frozenset("PartitionedCall StatefulPartitionedCall While StatelessWhile If StatelessIf")


def _elements(shape) -> int | None:
    shape = tf.TensorShape(shape)
    return shape.num_elements() if shape.is_fully_defined() else None


def op_flops(op) -> int | None:
    """FLOPs of one graph operation (conventions in the module docstring); None when a shape
    it needs is not fully known."""
    kind = op.type
    if kind == "MatMul":
        a = op.inputs[0].shape
        out = _elements(op.outputs[0].shape)
        if out is None or not a.is_fully_defined():
            return None
        k = a[0] if op.get_attr("transpose_a") else a[1]
        return 2 * int(k) * out
    if kind in ("BatchMatMul", "BatchMatMulV2", "BatchMatMulV3"):
        a = op.inputs[0].shape
        out = _elements(op.outputs[0].shape)
        if out is None or not a.is_fully_defined():
            return None
        k = a[-2] if op.get_attr("adj_x") else a[-1]
        return 2 * int(k) * out
    if kind in ("Conv2D", "Conv2DBackpropInput", "Conv2DBackpropFilter"):
        if op.get_attr("data_format") != b"NHWC":
            return None
        # The forward conv's output (or its gradient) and filter [kh, kw, c_in, c_out]: every
        # output element is a kh*kw*c_in dot product, in the forward pass and both backprops.
        if kind == "Conv2D":
            out, kernel = op.outputs[0].shape, op.inputs[1].shape
        elif kind == "Conv2DBackpropInput":
            out, kernel = op.inputs[2].shape, op.inputs[1].shape
        else:
            out, kernel = op.inputs[2].shape, op.outputs[0].shape
        n = _elements(out)
        if n is None or not kernel.is_fully_defined():
            return None
        return 2 * n * int(kernel[0]) * int(kernel[1]) * int(kernel[2])
    if kind == "AddN":
        n = _elements(op.outputs[0].shape)
        return None if n is None else n * (len(op.inputs) - 1)
    if kind in _ELEMENTWISE:
        # Variable updates have no output: count the value added.
        shape = op.inputs[1].shape if kind.endswith("VariableOp") else op.outputs[0].shape
        return _elements(shape)
    if kind in _REDUCTIONS:
        return _elements(op.inputs[0].shape)
    return 0


@dataclasses.dataclass
class FlopCount:
    """FLOPs of one call of a traced function.

    Attributes:
      total: the sum over every op whose shapes are known.
      by_type: op type -> FLOPs.
      unknown: op types whose shapes were not fully known (not counted), with their counts.
      calls: function-call and control-flow ops, whose bodies are not counted.
    """

    total: int
    by_type: dict[str, int]
    unknown: dict[str, int]
    calls: int


def graph_flops(concrete_function) -> FlopCount:
    """Counts the FLOPs of one call of ``concrete_function`` from its traced graph.

    The graph is what the Python code traced (before Grappler or XLA rewrite it), so the count
    is the model's arithmetic, independent of fusion, and the same with and without XLA.
    """
    by_type, unknown, calls = collections.Counter(), collections.Counter(), 0
    for op in concrete_function.graph.get_operations():
        if op.type in _CALLS:
            calls += 1
            continue
        n = op_flops(op)
        if n is None:
            unknown[op.type] += 1
        elif n:
            by_type[op.type] += n
    return FlopCount(sum(by_type.values()), dict(by_type), dict(unknown), calls)


def layer_flops(*models) -> tuple[int, int]:
    """2 * multiply-adds of one forward pass through every Dense and Conv layer, per example.

    Returns:
      (FLOPs, number of Dense/Conv layers whose size could not be read and were skipped).
    """
    total, skipped = 0, 0
    for model in models:
        for layer in model._flatten_layers(include_self=False, recursive=True):
            if isinstance(layer, keras.layers.Dense):
                fan_in, units = layer.kernel.shape
                total += 2 * int(fan_in) * int(units)
            elif isinstance(layer, (keras.layers.Conv2D, keras.layers.Conv2DTranspose)):
                kh, kw = layer.kernel.shape[:2]
                try:
                    # A transposed conv does its multiply-adds per input position.
                    if isinstance(layer, keras.layers.Conv2DTranspose):
                        h, w, c_in = layer.input.shape[1:]
                        c_out = layer.filters
                    else:
                        h, w, c_out = layer.output.shape[1:]
                        c_in = layer.kernel.shape[2]
                except (AttributeError, ValueError):
                    skipped += 1
                    continue
                total += 2 * int(h) * int(w) * int(kh) * int(kw) * int(c_in) * int(c_out)
    return total, skipped
