"""Attribution methods beyond the homework, in the homework's form.

Each is constructed as ``(sess, input_tensor, output_tensor, target_class)`` and called
with ``X`` and keywords, on the engine of ``hw3_attribution``:

- ``pair``: PAIR saliency's ``XRAI``, ``GuidedIG``, ``BlurIG``, ``GuidedBackprop`` (and
  ``GuidedIGPath``, Guided IG's adaptive path in numpy).
- ``segmentation``: the one place that turns images into segments (XRAI's Felzenszwalb
  segments, a ``segments`` argument parsed into masks).
"""
