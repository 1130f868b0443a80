"""The model lab: what the embedder and the detector both stand on.

- :mod:`~services.modellab.models`: the backbone registry (EfficientNet-Lite with offline
  ImageNet weights, VGG16, ResNet-50, OpenCLIP / SigLIP foundation models with a text tower)
  and their preprocessing;
- :mod:`~services.modellab.artifact`: model directories (fp16 weights + a JSON card,
  content-addressed versions);
- :mod:`~services.modellab.onnx`: exporting a network once per process and serving it with ONNX
  Runtime on the CPU;
- :mod:`~services.modellab.runtime`: the load-once base of every served model (the embedder's
  :class:`~services.embedder.inference.Embedder`, the detector's runner).

Nothing here knows about garments, catalogs or HTTP; the services import the lab, never each
other.
"""
