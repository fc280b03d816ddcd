"""Metrics beyond the homework, as Quantus 0.6.0 defines them (its defaults, its ``abs()``
and its normalisation by the call's largest ``|a|``), on arrays:

- ``localisation``: does a map point at the object (a bool mask)? ``PointingGame``,
  ``RelevanceMassAccuracy``, ``RelevanceRankAccuracy``, ``TopKIntersection``,
  ``AttributionLocalisation``, ``AUC``.
- ``complexity``: how concentrated is a map? ``Sparseness``, ``Complexity``,
  ``EffectiveComplexity``.
- ``faithfulness``: does removing what a map ranks high change the model's output? On a
  model in a session, in the form of ``hw3_evaluation.AverageDrop``: ``PixelFlipping``,
  ``RegionPerturbation``, ``FaithfulnessCorrelation``, ``MonotonicityCorrelation`` (every
  perturbed copy built in the graph by the row engine).
- ``robustness``: does the *method* explain stably and tell classes apart? Given an
  attribution instance: ``MaxSensitivity``, ``AvgSensitivity``, ``RandomLogit``.
- ``randomisation``: the sanity check of Adebayo et al., ``ModelParameterRandomisation``
  (the model's weights randomised layer by layer, in place, and put back exactly).
- ``maps``: what the model-free metrics share: the parser of ``attr_map`` (``[N, H, W]`` or
  one ``[H, W]``) and ``mask``, Quantus' ``normalise_by_max``, the error templates.

The model-free ones take pixel maps ``[N, H, W]`` and return per-image scores ``[N]``
(one map: a scalar); they need no model and no TensorFlow session.
"""
