"""symconv.onnx: models built here (onnx.helper, torch.onnx.export) -> Networks that agree with ONNX Runtime."""

from __future__ import annotations

import io
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest

onnx = pytest.importorskip("onnx", reason="the ONNX bridge needs the extra: pip install 'symconv[onnx]'")
pytest.importorskip("onnxruntime", reason="the ONNX bridge needs the extra: pip install 'symconv[onnx]'")
so = pytest.importorskip("symconv.onnx", reason="symconv.onnx did not import")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from symconv import AvgPool2d, Conv2d, CrossEntropyLoss, Dense, Flatten, MaxPool2d, MSELoss, ReLU  # noqa: E402

RNG = np.random.default_rng(0)


def _init(name: str, shape: tuple[int, ...]) -> Any:
    return numpy_helper.from_array(RNG.standard_normal(shape).astype(np.float32), name)


def _model(nodes: list[Any], inits: list[Any], in_shape: list[Any], opset: int = 17) -> Any:
    """A graph from x through ``nodes``; its output's shape is ONNX's own shape inference (the checker needs one)."""
    out = nodes[-1].output[0]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, in_shape)],
                              [helper.make_tensor_value_info(out, TensorProto.FLOAT, [])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    del model.graph.output[0].type.tensor_type.shape.dim[:]
    model.graph.output[0].type.tensor_type.ClearField("shape")
    inferred = {v.name: v for v in onnx.shape_inference.infer_shapes(model).graph.value_info}
    shape = inferred[out].type.tensor_type.shape if out in inferred else onnx.TensorShapeProto()
    model.graph.output[0].type.tensor_type.shape.CopyFrom(shape)
    return model


def _conv(name: str, x: str, y: str, k: int, c: int, r: int, **attrs: Any) -> tuple[Any, list[Any]]:
    inits = [_init(f"{name}.w", (k, c, r, r)), _init(f"{name}.b", (k,))]
    return helper.make_node("Conv", [x, f"{name}.w", f"{name}.b"], [y], name=name, **attrs), inits


def test_a_helper_built_cnn_agrees_with_onnx_runtime() -> None:
    conv, inits = _conv("c1", "x", "a", 3, 2, 3, pads=[1, 1, 1, 1], strides=[2, 1], dilations=[1, 2])
    nodes = [conv, helper.make_node("Relu", ["a"], ["b"]),
             helper.make_node("MaxPool", ["b"], ["c"], kernel_shape=[2, 2], strides=[2, 2]),
             helper.make_node("AveragePool", ["c"], ["d"], kernel_shape=[3, 3], strides=[1, 1], pads=[1, 1, 1, 1],
                              count_include_pad=1),
             helper.make_node("Constant", [], ["shape"], value=numpy_helper.from_array(np.array([0, -1]))),
             helper.make_node("Reshape", ["d", "shape"], ["e"]),
             helper.make_node("MatMul", ["e", "m.w"], ["f"]), helper.make_node("Add", ["m.b", "f"], ["g"])]
    inits += [_init("m.w", (12, 4)), _init("m.b", (4,))]
    model = _model(nodes, inits, ["N", 2, 8, 6])
    net = so.load(model, input_shape=(2, 2, 8, 6))
    layers = net.layers
    assert [type(layer) for layer in layers] == [Conv2d, ReLU, MaxPool2d, AvgPool2d, Flatten, Dense, MSELoss]
    assert layers[0] == Conv2d(3, (3, 3), (2, 1), (1, 1), (1, 2))
    assert net.shapes[-1] == (2, 4)
    assert net.params is not None and list(net.params) == list(net.parameter_shapes())
    np.testing.assert_array_equal(net.params["0.weight"], numpy_helper.to_array(inits[0]))
    np.testing.assert_array_equal(net.params["5.bias"], numpy_helper.to_array(inits[-1]))  # MatMul + Add's bias
    result = so.agreement(net, model, dtype="float64")
    assert result.holds and result.compiled < 1e-5, result


def _same_pad_model(auto_pad: str, kernel: int, stride: int) -> Any:
    conv, inits = _conv("same", "x", "y", 2, 1, kernel, auto_pad=auto_pad, strides=[stride, stride])
    return _model([conv], inits, [1, 1, 7, 7])


@pytest.mark.parametrize("auto_pad", ["SAME_UPPER", "SAME_LOWER", "VALID"])
def test_auto_pad_where_symmetric(auto_pad: str) -> None:
    model = _same_pad_model(auto_pad, 3, 1)
    net = so.load(model)
    assert net.layers[0].padding == ((0, 0) if auto_pad == "VALID" else (1, 1))
    assert so.agreement(net, model).holds


@pytest.mark.parametrize("auto_pad, kernel, stride, padding", [
    ("SAME_UPPER", 2, 1, ((0, 1), (0, 1))),  # the odd cell at the end
    ("SAME_LOWER", 2, 1, ((1, 0), (1, 0))),  # at the beginning
    ("SAME_UPPER", 3, 2, ((1, 1), (1, 1))),  # 7 -> ceil(7 / 2) = 4 outputs
    ("SAME_LOWER", 4, 2, ((2, 1), (2, 1))),
])
def test_auto_pad_asymmetric(auto_pad: str, kernel: int, stride: int, padding: Any) -> None:
    model = _same_pad_model(auto_pad, kernel, stride)
    net = so.load(model)
    spec = net.layers[0].spec(net.input_shape)
    assert spec.padding_sides == padding and spec.output_size == (-(-7 // stride),) * 2
    assert so.agreement(net, model, dtype="float64").holds


def test_asymmetric_pads_groups_and_no_bias_agree_with_onnx_runtime() -> None:
    w = _init("g.w", (6, 2, 3, 2))
    conv = helper.make_node("Conv", ["x", "g.w"], ["y"], name="g", group=2, pads=[0, 1, 2, 0], strides=[2, 1])
    model = _model([conv], [w], [2, 4, 7, 6])
    net = so.load(model)
    layer = net.layers[0]
    assert layer.groups == 2 and not layer.bias and set(net.params) == {"0.weight"}
    assert layer.spec(net.input_shape).padding_sides == ((0, 2), (1, 0))
    assert so.agreement(net, model, dtype="float64").holds


def _node(op: str, **attrs: Any) -> tuple[Any, list[Any]]:
    return helper.make_node(op, ["x"], ["y"], name=op.lower(), **attrs), []


@pytest.mark.parametrize("case, message", [
    (lambda: _conv("dw", "x", "y", 2, 1, 3, group=3), "node 'dw' \\(Conv\\): the weight \\(2, 1, 3, 3\\) with group=3"),
    (lambda: _node("MaxPool", kernel_shape=[2, 2], pads=[0, 0, 1, 1]), "top 0 bottom 1 left 0 right 1"),
    (lambda: _conv("at", "x", "y", 2, 2, 3, foo=1), "not a valid ONNX model: Unrecognized attribute: foo"),
    (lambda: _node("Sigmoid"), "node 'sigmoid' \\(Sigmoid\\): the operator is not supported"),
    (lambda: _node("MaxPool", kernel_shape=[2, 2], ceil_mode=1), "ceil_mode=1"),
    (lambda: _node("AveragePool", kernel_shape=[3, 3], pads=[1, 1, 1, 1]), "count_include_pad=0 with padding"),
])
def test_unsupported_nodes_are_named_in_one_line(case: Any, message: str) -> None:
    node, inits = case()
    with pytest.raises(ValueError, match=message) as error:
        so.load(_model([node], inits, [1, 2, 6, 6]))
    assert "\n" not in str(error.value)


def test_symbolic_dimensions_are_pinned_or_refused() -> None:
    model = _model([helper.make_node("Relu", ["x"], ["y"])], [], ["batch", 3])
    with pytest.raises(ValueError, match="symbolic dimension 'batch' on axis 0: pass input_shape"):
        so.load(model)
    assert so.load(model, input_shape=(5, 3)).input_shape == (5, 3)
    with pytest.raises(ValueError, match="fixes it at 3"):
        so.load(model, input_shape=(5, 4))


def test_malformed_and_missing_files(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"\xff\x00 this is not protobuf \x13\x37" * 8)
    with pytest.raises(ValueError, match="garbage.onnx is not") as error:
        so.load(garbage)
    assert "\n" not in str(error.value)
    empty = tmp_path / "empty.onnx"
    empty.write_bytes(b"")
    with pytest.raises(ValueError, match="empty.onnx is not a valid ONNX model"):
        so.load(empty)
    with pytest.raises(ValueError, match="cannot read .*missing.onnx"):
        so.load(tmp_path / "missing.onnx")


def test_a_branching_graph_is_refused() -> None:
    nodes = [helper.make_node("Relu", ["x"], ["a"]), helper.make_node("Relu", ["x"], ["b"], name="second")]
    with pytest.raises(ValueError, match="node 'second' \\(Relu\\): does not read the previous node's output 'a'"):
        so.load(_model(nodes, [], [1, 3]))


def _exported(module: Any, shape: tuple[int, ...]) -> Any:
    torch = pytest.importorskip("torch", reason="torch.onnx.export needs PyTorch")
    buffer = io.BytesIO()
    with warnings.catch_warnings():  # the TorchScript exporter's deprecation notice
        warnings.simplefilter("ignore")
        torch.onnx.export(module.eval(), (torch.randn(shape),), buffer, dynamo=False)
    return onnx.load_from_string(buffer.getvalue())


def test_a_mobilenet_like_block_exported_from_pytorch() -> None:
    torch = pytest.importorskip("torch", reason="torch.onnx.export needs PyTorch")
    nn = torch.nn
    torch.manual_seed(0)
    # MobileNet's blocks: a strided 3x3 convolution, a depthwise 3x3 (groups = channels, no bias: a batch norm
    # would follow) and a pointwise 1x1, twice, then global average pooling and a classifier with softmax.
    block = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.ReLU(),
                          nn.Conv2d(8, 8, 3, padding=1, groups=8, bias=False), nn.ReLU(), nn.Conv2d(8, 16, 1), nn.ReLU(),
                          nn.Conv2d(16, 16, 3, stride=2, padding=1, groups=16), nn.ReLU(), nn.Conv2d(16, 8, 1),
                          nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 5), nn.Softmax(dim=1))
    model = _exported(block, (2, 3, 12, 12))
    net = so.load(model)
    assert isinstance(net.loss, CrossEntropyLoss) and net.shapes[-1] == (2, 5)
    assert [layer.groups for layer in net.layers if isinstance(layer, Conv2d)] == [1, 8, 1, 16, 1]
    x = np.random.default_rng(3).standard_normal((2, 3, 12, 12))
    with torch.no_grad():
        expected = block(torch.from_numpy(x).float()).double().numpy()
    np.testing.assert_allclose(so.graph_output(net, net.reference_forward(x).output), expected, rtol=1e-5, atol=1e-6)
    assert so.agreement(net, model).holds


def test_a_decoder_with_transposed_convolutions_exported_from_pytorch() -> None:
    """ConvTranspose: stride, output_padding, groups, dilation and no bias, as a decoder or segmentation head has them."""
    torch = pytest.importorskip("torch", reason="torch.onnx.export needs PyTorch")
    nn = torch.nn
    torch.manual_seed(1)
    decoder = nn.Sequential(nn.Conv2d(3, 4, 3, stride=2, padding=1), nn.ReLU(),
                            nn.ConvTranspose2d(4, 6, 3, stride=2, padding=1, output_padding=1, groups=2), nn.ReLU(),
                            nn.ConvTranspose2d(6, 2, 2, dilation=2, bias=False))
    model = _exported(decoder, (2, 3, 8, 8))
    net = so.load(model)
    kinds = [(type(layer).__name__, getattr(layer, "groups", None)) for layer in net.layers]
    assert kinds == [("Conv2d", 1), ("ReLU", None), ("ConvTranspose2d", 2), ("ReLU", None), ("ConvTranspose2d", 1),
                     ("MSELoss", None)]  # a graph without Softmax ends in the MSE loss
    assert net.shapes[-1] == (2, 2, 10, 10) and "4.bias" not in net.params
    x = np.random.default_rng(4).standard_normal((2, 3, 8, 8))
    with torch.no_grad():
        expected = decoder(torch.from_numpy(x).float()).double().numpy()
    np.testing.assert_allclose(net.reference_forward(x).output, expected, rtol=1e-5, atol=1e-6)
    for dtype in ("float32", "float64"):
        assert so.agreement(net, model, dtype=dtype).holds


@pytest.mark.parametrize("attrs, message", [
    (dict(output_shape=[8, 8]), "the output_shape attribute is not supported"),
    (dict(auto_pad="SAME_UPPER"), "auto_pad='SAME_UPPER' is not supported for ConvTranspose"),
])
def test_transposed_convolution_attributes_symconv_does_not_take(attrs: dict, message: str) -> None:
    node = helper.make_node("ConvTranspose", ["x", "w"], ["y"], name="up", kernel_shape=[2, 2], strides=[2, 2], **attrs)
    with pytest.raises(ValueError, match="node 'up' \\(ConvTranspose\\): " + message):
        so.load(_model([node], [_init("w", (2, 3, 2, 2))], [1, 2, 4, 4]))


def test_the_loaded_network_proves() -> None:
    conv, inits = _conv("c", "x", "a", 2, 1, 2)
    nodes = [conv, helper.make_node("Relu", ["a"], ["b"]), helper.make_node("Flatten", ["b"], ["c"]),
             helper.make_node("Gemm", ["c", "d.w", "d.b"], ["d"], transB=1, alpha=0.5),
             helper.make_node("Softmax", ["d"], ["p"])]
    inits += [_init("d.w", (3, 8)), _init("d.b", (3,))]
    net = so.load(_model(nodes, inits, [1, 1, 3, 3]))
    assert net.params is not None
    np.testing.assert_allclose(net.params["3.weight"], 0.5 * numpy_helper.to_array(inits[2]), rtol=1e-7)
    assert net.prove().holds


def test_an_attribute_no_handler_reads_is_refused() -> None:
    from symconv.onnx.ops import HANDLERS, Node

    node = Node.of(helper.make_node("Relu", ["x"], ["y"], name="r", alpha=0.1), opset=17)
    HANDLERS["Relu"](node, (1, 3), {}, [], {})
    with pytest.raises(ValueError, match="node 'r' \\(Relu\\): the attribute 'alpha' is not supported"):
        node.check_consumed()


def _tiny_file(tmp_path: Path) -> Path:
    conv, inits = _conv("conv_1", "x", "a", 2, 1, 2)
    nodes = [conv, helper.make_node("Relu", ["a"], ["b"]), helper.make_node("Flatten", ["b"], ["c"]),
             helper.make_node("Gemm", ["c", "d.w", "d.b"], ["d"], transB=1), helper.make_node("Softmax", ["d"], ["p"])]
    path = tmp_path / "tiny_model.onnx"
    onnx.save(_model(nodes, inits + [_init("d.w", (3, 8)), _init("d.b", (3,))], ["N", 1, 3, 3]), str(path))
    return path


def test_cli_import_proves_writes_and_agrees(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from symconv.cli import main

    tex = tmp_path / "tiny.tex"
    status = main(["import", str(_tiny_file(tmp_path)), "--input-shape", "2,1,3,3", "--latex", str(tex)])
    out = capsys.readouterr().out
    assert status == 0, out
    assert "0: Conv2d(2, (2, 2)" in out and "3: Dense(3) -> (2, 3)" in out and "[ok] grad_input" in out
    assert ": agree" in out
    document = tex.read_text()
    assert "tiny\\_model.onnx" in document and "\\begin{align*}" in document and "[ok] grad_3.weight" in document


@pytest.mark.parametrize("args, message", [
    (["--no-prove"], "symbolic dimension 'N' on axis 0: pass input_shape"),
    (["--input-shape", "2,x"], "--input-shape must be integers"),
    (["--input-shape", "2,2,3,3"], "fixes it at 1"),
])
def test_cli_import_usage_errors_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str],
                                        message: str) -> None:
    from symconv.cli import main

    assert main(["import", str(_tiny_file(tmp_path)), *args]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
