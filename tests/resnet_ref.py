"""Seeded torchvision-ResNet state dicts in numpy, shared by the tests and the torch script.

``reference_state(arch, num_classes, seed)`` gives every key of torchvision's
``resnet18`` / ``resnet50`` ``state_dict()`` (``conv1.weight``, ``bn1.*``,
``layer1.0.conv1.weight``, ``layer1.0.downsample.0.weight``, ..., ``fc.weight``,
``fc.bias``, ``*.num_batches_tracked``) with values from a seeded numpy generator, scaled
so that activations stay of order one through every block and the logits differ clearly
from image to image. ``reference_images(seed)`` gives the inputs, RGB 0-255.

``make_torch_fixtures.py`` (run where torch is installed) loads these arrays into a plain
torch ResNet with ``load_state_dict(strict=True)``, which also checks this key listing
against the architecture, and stores torch's logits in ``data/resnet_reference.npz``.
This file is independent of the project's ``attrkit/models/torchvision_resnet.py`` on purpose.
"""
from collections import OrderedDict

import numpy as np

# arch -> (block kind, blocks per stage); torchvision's resnet18 / resnet50.
ARCHS = {"resnet18": ("basic", (2, 2, 2, 2)), "resnet50": ("bottleneck", (3, 4, 6, 3))}
NUM_CLASSES = 7
IMAGE_SIZE = 64
SEEDS = {"resnet18": 18, "resnet50": 50}
IMAGE_SEED = 5


def _conv(rng, out_ch, in_ch, k, gain=1.0):
    std = gain * np.sqrt(2.0 / (in_ch * k * k))
    return rng.normal(0, std, (out_ch, in_ch, k, k)).astype(np.float32)


def _bn(state, rng, prefix, ch, gamma=1.0):
    state[prefix + ".weight"] = (gamma * rng.uniform(0.5, 1.5, ch)).astype(np.float32)
    state[prefix + ".bias"] = rng.normal(0, 0.2, ch).astype(np.float32)
    state[prefix + ".running_mean"] = rng.normal(0, 0.2, ch).astype(np.float32)
    state[prefix + ".running_var"] = rng.uniform(0.5, 2.0, ch).astype(np.float32)
    state[prefix + ".num_batches_tracked"] = np.array(rng.integers(0, 1000), np.int64)


def reference_state(arch, num_classes=NUM_CLASSES, seed=None):
    """OrderedDict key -> array in torchvision's order (float32; counters int64)."""
    kind, repeats = ARCHS[arch]
    rng = np.random.default_rng(SEEDS[arch] if seed is None else seed)
    expansion = 4 if kind == "bottleneck" else 1
    state = OrderedDict()
    state["conv1.weight"] = _conv(rng, 64, 3, 7)
    _bn(state, rng, "bn1", 64)
    in_ch = 64
    for stage, (n, width) in enumerate(zip(repeats, (64, 128, 256, 512)), start=1):
        for b in range(n):
            p = "layer{}.{}.".format(stage, b)
            stride = 2 if (b == 0 and stage > 1) else 1
            out_ch = width * expansion
            if kind == "basic":
                convs = [(in_ch, width, 3), (width, width, 3)]
            else:
                convs = [(in_ch, width, 1), (width, width, 3), (width, out_ch, 1)]
            for i, (ci, co, k) in enumerate(convs, start=1):
                last = i == len(convs)
                state[p + "conv{}.weight".format(i)] = _conv(rng, co, ci, k)
                # the residual branch's last BN small, so that sums stay of order one
                _bn(state, rng, p + "bn{}".format(i), co, gamma=0.3 if last else 1.0)
            if stride != 1 or in_ch != out_ch:
                state[p + "downsample.0.weight"] = _conv(rng, out_ch, in_ch, 1)
                _bn(state, rng, p + "downsample.1", out_ch)
            in_ch = out_ch
    state["fc.weight"] = rng.normal(0, 1.0 / np.sqrt(in_ch), (num_classes, in_ch)
                                    ).astype(np.float32)
    state["fc.bias"] = rng.normal(0, 0.1, num_classes).astype(np.float32)
    return state


def reference_images(n=3, size=IMAGE_SIZE, seed=IMAGE_SEED):
    """[n, size, size, 3] float32 RGB 0-255: smooth random images (not white noise)."""
    rng = np.random.default_rng(seed)
    coarse = rng.uniform(0, 255, (n, size // 8, size // 8, 3))
    img = np.repeat(np.repeat(coarse, 8, axis=1), 8, axis=2)
    return np.clip(img + rng.normal(0, 20, img.shape), 0, 255).astype(np.float32)
