"""``explain_dataset.py`` at data-set scale, on Ray.

- ``plan``: the inputs (class folders, ``.npz``, the bundled sample), the settings that
  change a number, shards named by a hash of both.
- ``engine``: the Ray actor that explains a shard (one model, every method's ops built
  once) and the driver that runs shards on an actor pool, writing each as it arrives.
- ``report``: per-method means with confidence intervals, merged influence experts, what
  was skipped; ``metrics.png`` and ``gallery.png``.
"""
