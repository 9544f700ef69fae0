"""train.py's int8 export: convolutions quantised, the first one (on the picture itself) kept in float.

A small real ONNX model (two convolutions) is quantised by onnxruntime with real calibration pictures;
no mocks."""

import cv2
import numpy as np
import onnxruntime as ort

from models.litter.train import IMGSZ, first_convolution, quantise


def two_convolutions(path):
    # onnx imported here, as train.py does: at collection it was 0.5-0.9 s of every pytest worker's start
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    w1 = numpy_helper.from_array(rng.normal(0, 0.3, (4, 3, 3, 3)).astype(np.float32), "w1")
    w2 = numpy_helper.from_array(rng.normal(0, 0.3, (2, 4, 3, 3)).astype(np.float32), "w2")
    graph = helper.make_graph(
        [helper.make_node("Conv", ["images", "w1"], ["a"], name="stem", pads=[1, 1, 1, 1]),
         helper.make_node("Relu", ["a"], ["b"], name="act"),
         helper.make_node("Conv", ["b", "w2"], ["out"], name="body", pads=[1, 1, 1, 1])],
        "two", [helper.make_tensor_value_info("images", TensorProto.FLOAT, ["batch", 3, IMGSZ, IMGSZ])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, ["batch", 2, IMGSZ, IMGSZ])], [w1, w2])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))


def test_the_first_convolution_is_the_one_reading_the_picture(tmp_path):
    two_convolutions(tmp_path / "m.onnx")
    assert first_convolution(tmp_path / "m.onnx") == ["stem"]


def test_quantise_keeps_the_first_convolution_in_float_and_quantises_the_rest(tmp_path):
    two_convolutions(tmp_path / "m.onnx")
    pictures = []
    for i in range(4):
        p = tmp_path / f"c{i}.jpg"
        cv2.imwrite(str(p), np.random.default_rng(i).integers(0, 255, (200, 260, 3), dtype=np.uint8))
        pictures.append(p)
    quantise(tmp_path / "m.onnx", tmp_path / "m.int8.onnx", pictures)
    import onnx

    graph = onnx.load(str(tmp_path / "m.int8.onnx")).graph
    feeds = {n.name: list(n.input) for n in graph.node if n.op_type == "Conv"}
    made_by = {o: n.op_type for n in graph.node for o in n.output}
    # the quantised convolution reads dequantised weights; the first reads its float weights as they were
    assert made_by.get(feeds["body"][1]) == "DequantizeLinear"
    assert feeds["stem"][0] == "images" and made_by.get(feeds["stem"][1]) is None
    # and it runs, close to the float model
    x = np.random.default_rng(9).random((1, 3, IMGSZ, IMGSZ), dtype=np.float32)
    want = ort.InferenceSession(str(tmp_path / "m.onnx")).run(None, {"images": x})[0]
    got = ort.InferenceSession(str(tmp_path / "m.int8.onnx")).run(None, {"images": x})[0]
    assert np.abs(got - want).mean() < 0.05 * np.abs(want).mean()
