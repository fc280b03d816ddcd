"""Attribution methods beyond the homework, in the homework's form.

Each is constructed as ``(sess, input_tensor, output_tensor, target_class)`` and called
with ``X`` and keywords, on the engine of ``hw3_attribution``:

- ``pair``: PAIR saliency's ``XRAI``, ``GuidedIG``, ``BlurIG``, ``GuidedBackprop`` (and
  ``GuidedIGPath``, Guided IG's adaptive path in numpy).
- ``perturbation``: ``LIME`` (lime), ``KernelSHAP`` (shap), ``FeatureAblation``
  (Captum) over segments, and ``RISE`` (Petsiuk et al.; Xplique): maps ``[N, H, W]``
  from the scores of masked copies built in the graph; ``PartitionSHAP`` (shap's image
  explainer): Owen values of ``X``'s shape over a hierarchical partition of the image.
- ``segmentation``: the one place that turns images into segments (the perturbation
  methods' ``segments`` argument as label maps; XRAI's Felzenszwalb segments, a
  ``segments`` argument parsed into masks).
"""
