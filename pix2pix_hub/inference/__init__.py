"""Using a trained translator.

``pipeline`` (``Pix2Pix``, the object users call), ``processor`` (images in and out, the size rules), ``generate``
(running the generator: eval mode, onnxruntime or torch), ``model_folder`` (a model folder on disk and on the Hub);
the ONNX side: ``onnx_engine`` (graphs run on onnxruntime), ``precision`` (fp32 or int8, and why), ``export``,
``quantize``, ``onnx_rewrite``, ``calibration``; many files at once: ``batch`` (translate) and ``evaluation``
(score against targets).
"""
