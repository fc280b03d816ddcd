"""attrkit: the machinery beneath the homework's files.

The project's root holds what a student and a grader look for: the four graded files
(``hw3_attribution.py``, ``hw3_infl.py``, ``hw3_evaluation.py``, ``hw3_vc.py``), the
course's helpers (``hw3_utils.py``, ``vgg16.py``, ``imagenet_classes.py``) and the commands
(``explain_dataset.py``, ``make_dataset.py``, ``make_submission.py``). Everything else is
here, one sub-package a room:

- :mod:`attrkit.models`: the bundled EfficientNet-Lite0, torchvision ResNets, your own
  Keras / SavedModel file (import, conversion, graph rewriting), PyTorch checkpoints read
  without torch, preprocessing.
- :mod:`attrkit.methods`: the attribution methods beyond the homework (PAIR saliency's
  XRAI, Guided IG, Blur IG, Guided Backprop) and the segmentations they share.
- :mod:`attrkit.metrics`: the metrics beyond the homework, as Quantus 0.6.0 defines them:
  the model-free localisation (Pointing Game, Relevance Mass / Rank Accuracy, Top-K
  Intersection, Attribution Localisation, AUC) and complexity (Sparseness, Complexity,
  Effective Complexity) metrics on pixel maps and masks.
- :mod:`attrkit.dataset`: ``explain_dataset.py``'s plan, Ray engine and report.
- :mod:`attrkit.figures`: the richer plotting helpers.

The methods here are built on the engine of ``hw3_attribution`` (its runner, row engine
and op cache), which the graded files share; nothing here is imported by a graded file
except lazily, for extras, where the package is present.
"""
