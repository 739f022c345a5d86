"""Collection: the doctests of the optional bridges (symconv.torch, symconv.onnx) run only with their extras."""

from __future__ import annotations

from importlib.util import find_spec

collect_ignore_glob: list[str] = []
if find_spec("torch") is None:
    collect_ignore_glob.append("symconv/torch/*.py")
if find_spec("onnx") is None or find_spec("onnxruntime") is None:
    collect_ignore_glob.append("symconv/onnx/*.py")
