"""Stand-in ONNX models with the built-in detector's interface, built by the tests (no download).

* person detector (YOLOX end-to-end export): ``input [1, 3, 416, 416]`` → ``dets [1, 1, 5]`` (x1, y1, x2, y2,
  score), ``labels [1, 1]``: one fixed box (in letterboxed input pixels) scored by how far the brightest
  input value rises above the letterbox grey (114), so a black frame holds nobody;
* pose model (RTMPose SimCC): ``input [1, 3, 256, 192]`` → ``simcc_x [1, 17, 384]``, ``simcc_y [1, 17, 512]``:
  every joint at the brightest column and row of the crop (the channel-summed image's maxima, at
  half-pixel bins), so the keypoints follow the image content and test the crop and its inverse.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

OPSET = 17
#: the stand-in detector's box in letterboxed 416×416 input pixels
DET_BOX = (104.0, 52.0, 312.0, 364.0)


def _save(graph, path: Path) -> Path:
    import onnx
    from onnx import helper

    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def person_detector(path: Path, box: tuple[float, float, float, float] = DET_BOX) -> Path:
    from onnx import TensorProto, helper, numpy_helper

    nodes = [
        helper.make_node("ReduceMax", ["input"], ["peak"], keepdims=0),
        helper.make_node("Sub", ["peak", "c114"], ["lifted"]),
        helper.make_node("Div", ["lifted", "c141"], ["score0"]),
        helper.make_node("Reshape", ["score0", "shape111"], ["score"]),
        helper.make_node("Concat", ["box", "score"], ["dets"], axis=2),
        helper.make_node("Identity", ["label"], ["labels"]),
    ]
    inits = [numpy_helper.from_array(np.array(114.0, np.float32), "c114"),
             numpy_helper.from_array(np.array(141.0, np.float32), "c141"),
             numpy_helper.from_array(np.array([1, 1, 1], np.int64), "shape111"),
             numpy_helper.from_array(np.array([[box]], np.float32), "box"),
             numpy_helper.from_array(np.zeros((1, 1), np.int64), "label")]
    graph = helper.make_graph(nodes, "standin_yolox", [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 416, 416])],
                              [helper.make_tensor_value_info("dets", TensorProto.FLOAT, [1, 1, 5]),
                               helper.make_tensor_value_info("labels", TensorProto.INT64, [1, 1])], inits)
    return _save(graph, path)


def pose_model(path: Path, joints: int = 17) -> Path:
    from onnx import TensorProto, helper, numpy_helper

    def axis_profile(name: str, reduce_axis: int, length: int) -> list:
        return [
            helper.make_node("ReduceMax", ["summed"], [f"{name}_max"], axes=[reduce_axis], keepdims=0),  # [1, L]
            helper.make_node("Unsqueeze", [f"{name}_max", "axis_last"], [f"{name}_col"]),  # [1, L, 1]
            helper.make_node("Concat", [f"{name}_col", f"{name}_col"], [f"{name}_pair"], axis=2),  # [1, L, 2]
            helper.make_node("Reshape", [f"{name}_pair", f"{name}_shape"], [f"{name}_one"]),  # [1, 1, 2L]
            helper.make_node("Expand", [f"{name}_one", f"{name}_expand"], [name]),  # [1, K, 2L]
        ]

    nodes = [helper.make_node("ReduceSum", ["input", "axis_c"], ["summed"], keepdims=0),  # [1, 256, 192]
             *axis_profile("simcc_x", 1, 192), *axis_profile("simcc_y", 2, 256)]
    inits = [numpy_helper.from_array(np.array([1], np.int64), "axis_c"),
             numpy_helper.from_array(np.array([2], np.int64), "axis_last"),
             numpy_helper.from_array(np.array([1, 1, 384], np.int64), "simcc_x_shape"),
             numpy_helper.from_array(np.array([1, 1, 512], np.int64), "simcc_y_shape"),
             numpy_helper.from_array(np.array([1, joints, 384], np.int64), "simcc_x_expand"),
             numpy_helper.from_array(np.array([1, joints, 512], np.int64), "simcc_y_expand")]
    graph = helper.make_graph(nodes, "standin_rtmpose",
                              [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 256, 192])],
                              [helper.make_tensor_value_info("simcc_x", TensorProto.FLOAT, [1, joints, 384]),
                               helper.make_tensor_value_info("simcc_y", TensorProto.FLOAT, [1, joints, 512])], inits)
    return _save(graph, path)
