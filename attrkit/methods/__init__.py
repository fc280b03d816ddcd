"""Attribution methods beyond the homework, in the homework's form.

Each is constructed as ``(sess, input_tensor, output_tensor, target_class)`` and called
with ``X`` and keywords, on the engine of ``hw3_attribution``:

- ``pair``: PAIR saliency's ``XRAI``, ``GuidedIG``, ``BlurIG``, ``GuidedBackprop`` (and
  ``GuidedIGPath``, Guided IG's adaptive path in numpy).
- ``perturbation``: ``LIME`` (lime), ``KernelSHAP`` (shap), ``FeatureAblation``
  (Captum) over segments, and ``RISE`` (Petsiuk et al.; Xplique): maps ``[N, H, W]``
  from the scores of masked copies built in the graph; ``PartitionSHAP`` (shap's image
  explainer): Owen values of ``X``'s shape over a hierarchical partition of the image.
- ``propagation``: ``DeepLIFT``, ``DeepLiftSHAP`` (Captum's), ``GradientSHAP`` (Captum's
  expected gradients), ``DeconvNet`` (Captum's Deconvolution): float32 of ``X``'s shape,
  from gradients overridden on a copy of the model.
- ``lrp``: ``LRP`` with Zennit's rules and composites, the graph read into layers (batch
  norms folded), pass, norm and gradient ops; an op without a rule is an error naming it.
- ``cam``: the CAM family of pytorch-grad-cam on a conv layer (``GradCAMPlusPlus``,
  ``XGradCAM``, ``LayerCAM``, ``HiResCAM``, ``EigenCAM``, ``ScoreCAM``, ``AblationCAM``):
  maps ``[N, H, W]``; Score-CAM's masked copies and Ablation-CAM's ablated activations are
  rows built in the graph.
- ``incremental``: exact incremental occlusion (``Occlusion``'s ``incremental``): the
  window each early layer recomputes for a patch, from the image's own activations, and
  the rest of the model copied onto the spliced maps.
- ``segmentation``: the one place that turns images into segments (the perturbation
  methods' ``segments`` argument as label maps; XRAI's Felzenszwalb segments, a
  ``segments`` argument parsed into masks).
"""
