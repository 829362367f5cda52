"""Model files a service may serve: names, the I/O every model must have and its
record (``modelfile``), a bounded reader of the ONNX protobuf (``proto``), and the
operators the workers' ONNX Runtime loads (``ops``, on the generated table
``ort_ops``). Needs neither onnx nor onnxruntime: the API checks files with it.
"""
