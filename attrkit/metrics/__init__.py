"""Metrics beyond the homework, as Quantus 0.6.0 defines them (its defaults, its ``abs()``
and its normalisation by the call's largest ``|a|``), on arrays:

- ``localisation``: does a map point at the object (a bool mask)? ``PointingGame``,
  ``RelevanceMassAccuracy``, ``RelevanceRankAccuracy``, ``TopKIntersection``,
  ``AttributionLocalisation``, ``AUC``.
- ``complexity``: how concentrated is a map? ``Sparseness``, ``Complexity``,
  ``EffectiveComplexity``.
- ``maps``: what the model-free metrics share: the parser of ``attr_map`` (``[N, H, W]`` or
  one ``[H, W]``) and ``mask``, Quantus' ``normalise_by_max``, the error templates.

Each takes pixel maps ``[N, H, W]`` and returns per-image scores ``[N]`` (one map: a
scalar); they need no model and no TensorFlow session.
"""
