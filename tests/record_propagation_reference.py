"""Record Captum, Zennit and pytorch-grad-cam on :mod:`propagation_net` for
tests/test_propagation.py and tests/test_cam.py: writes
tests/data/propagation_reference.npz.

PyTorch and the three libraries are not dependencies of the project (pytorch-grad-cam and
Zennit need torchvision, a several-GB install beside our pins), so this runs where they
are importable, e.g. in a side environment::

    python -m venv /tmp/ref_env
    /tmp/ref_env/bin/pip install torch==2.14.1 torchvision==0.29.1
    /tmp/ref_env/bin/pip install captum==0.9.0 zennit==0.5.1 grad-cam==1.5.7 "numpy<2.4"
    /tmp/ref_env/bin/python tests/record_propagation_reference.py

Captum 0.9.0's DeepLift breaks summation to delta where a ReLU module feeds a MaxPool
module directly (its backward hooks on adjacent modules, Captum issue #1104): the PyTorch
network has a module computing ``x · 1`` between them, the same function, on which Captum
sums to delta.

The network is built in PyTorch from the same numpy weights (:func:`propagation_net.
weights`) in float64, so the fixture holds the references' values without float32
rounding; the test builds it in TensorFlow and compares. Keys: ``images``, ``targets``,
``baseline`` (one image), ``baselines`` (DeepLiftShap's set), ``logits``, then one array per
method: ``deeplift``, ``deeplift_shap``, ``deconvnet``, ``lrp_<rule>`` and ``cam_<name>``
(pytorch-grad-cam's map at the layer before ReLU and scaling, ``[N, 6, 6]``); and Zennit
on the second network (:func:`propagation_net.tf_blocks_model`: a depthwise convolution,
batch norms merged by Zennit's ``SequentialMergeBatchNorm``, ReLU6, a residual sum and a
global average pool): ``blocks_logits`` and ``blocks_lrp_<rule>``.
"""
import os
import sys

import numpy as np

TESTS_DIR = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, TESTS_DIR)

import propagation_net as net   # noqa: E402

FIXTURE = net.REFERENCE

TARGETS = np.array([1, 3, 0])


def torch_net(preprocessing=True):
    """The network as a ``torch.nn.Module`` on NCHW images (as pytorch-grad-cam expects:
    Score-CAM upsamples to the input's last two axes)."""
    import torch
    from torch import nn
    w = {k: torch.tensor(v, dtype=torch.float64) for k, v in net.weights().items()}

    def conv(name, cin, cout):
        layer = nn.Conv2d(cin, cout, 3, padding=1).double()
        layer.weight.data = w[name + "/w"].permute(3, 2, 0, 1).contiguous()
        layer.bias.data = w[name + "/b"]
        return layer

    def dense(name, cin, cout):
        layer = nn.Linear(cin, cout).double()
        layer.weight.data = w[name + "/w"].t().contiguous()
        layer.bias.data = w[name + "/b"]
        return layer

    class Flatten(nn.Module):         # [N, C, h, w] -> [N, h·w·C] in TF's order
        def forward(self, x):
            return x.permute(0, 2, 3, 1).reshape(len(x), -1)

    class Copy(nn.Module):             # x · 1: a node between ReLU and MaxPool (see above)
        def forward(self, x):
            return x * 1.0

    class Pre(nn.Module):
        def forward(self, x):
            return (x - 127.5) / 127.5 if preprocessing else x

    return nn.Sequential(Pre(), conv("conv1", 3, 4), nn.ReLU(), Copy(), nn.MaxPool2d(2),
                         conv("conv2", 4, 6), nn.ReLU(), nn.AvgPool2d(2), Flatten(),
                         dense("fc1", 54, 8), nn.ReLU(), dense("fc2", 8, 5)).eval()


def nchw(X):
    import torch
    return torch.tensor(np.transpose(X, (0, 3, 1, 2)), dtype=torch.float64)


def nhwc(a):
    return np.transpose(a.detach().numpy(), (0, 2, 3, 1))


def torch_blocks_net():
    """:func:`propagation_net.tf_blocks_model` in PyTorch (NCHW, preprocessed input), its
    residual sum a ``zennit.layer.Sum`` (relevance split by Zennit's Norm rule)."""
    import torch
    from torch import nn
    from zennit.layer import Sum
    w = {k: torch.tensor(v, dtype=torch.float64) for k, v in net.block_weights().items()}
    c = net.BLOCK_CHANNELS

    def conv(name, cin, cout, k, groups=1, bias=False):
        layer = nn.Conv2d(cin, cout, k, padding=k // 2, groups=groups, bias=bias).double()
        layer.weight.data = w[name + "/w"].permute(3, 2, 0, 1).contiguous()
        if groups > 1:          # TF's depthwise [kh, kw, C, 1] -> torch's [C, 1, kh, kw]
            layer.weight.data = w[name + "/w"].permute(2, 3, 0, 1).contiguous()
        if bias:
            layer.bias.data = w[name + "/b"]
        return layer

    def bn(name):
        layer = nn.BatchNorm2d(c, eps=net.BN_EPSILON).double().eval()
        layer.weight.data, layer.bias.data = w[name + "/gamma"], w[name + "/beta"]
        layer.running_mean.data, layer.running_var.data = w[name + "/mean"], w[name + "/var"]
        return layer

    class Blocks(nn.Module):
        def __init__(self):
            super().__init__()
            self.stem = nn.Sequential(conv("stem", 3, c, 3), bn("stem_bn"), nn.ReLU6())
            self.branch = nn.Sequential(conv("dw", c, c, 3, groups=c), bn("dw_bn"), nn.ReLU(),
                                        conv("pw", c, c, 1, bias=True))
            self.sum, self.relu = Sum(), nn.ReLU()
            self.pool = nn.AdaptiveAvgPool2d(1)
            self.fc = nn.Linear(c, net.CLASSES).double()
            self.fc.weight.data, self.fc.bias.data = w["fc/w"].t().contiguous(), w["fc/b"]

        def forward(self, x):
            h = self.stem(x)
            h = self.relu(self.sum(torch.stack([h, self.branch(h)], dim=-1)))
            return self.fc(self.pool(h).flatten(1))

    return Blocks().eval()


def captum_values(model, X, baseline, baselines):
    import torch
    from captum.attr import Deconvolution, DeepLift, DeepLiftShap
    x = nchw(X).requires_grad_(True)
    t = torch.tensor(TARGETS)
    base = nchw(np.repeat(baseline[None], len(X), 0))
    return {
        "deeplift": nhwc(DeepLift(model).attribute(x, base, target=t)),
        "deeplift_shap": nhwc(DeepLiftShap(model).attribute(x, nchw(baselines), target=t)),
        "deconvnet": nhwc(Deconvolution(model).attribute(x, target=t))}


def zennit_values(X, model=None, canonizers=None, prefix="lrp_"):
    """LRP of the network without preprocessing, on the preprocessed images (so that
    every rule sees conv1 as the first layer); relevance starts from the target logit."""
    import torch
    from zennit.attribution import Gradient
    from zennit.composites import (EpsilonGammaBox, EpsilonPlusFlat, LayerMapComposite,
                                   layer_map_base)
    from zennit.rules import AlphaBeta, Epsilon, ZPlus
    from zennit.types import Convolution
    model = torch_net(preprocessing=False) if model is None else model
    x = nchw(net.preprocess(X))
    onehot = torch.nn.functional.one_hot(torch.tensor(TARGETS), net.CLASSES).double()

    def every_layer(rule):
        return LayerMapComposite(layer_map_base() + [(Convolution, rule),
                                                     (torch.nn.Linear, rule)],
                                 canonizers=canonizers)

    low = torch.full_like(x, net.preprocess(0.0))
    high = torch.full_like(x, net.preprocess(255.0))
    composites = {"epsilon": every_layer(Epsilon(epsilon=1e-6)),
                  "zplus": every_layer(ZPlus()),
                  "alpha_beta": every_layer(AlphaBeta(alpha=2.0, beta=1.0)),
                  "epsilon_plus_flat": EpsilonPlusFlat(canonizers=canonizers),
                  "epsilon_gamma_box": EpsilonGammaBox(low=low, high=high,
                                                       canonizers=canonizers)}
    out = {}
    for name, composite in composites.items():
        with Gradient(model, composite) as attributor:
            _, relevance = attributor(x.clone().requires_grad_(True),
                                      lambda logits: logits * onehot)
        out[prefix + name] = nhwc(relevance)
    return out


def grad_cam_values(model, X):
    from pytorch_grad_cam import (AblationCAM, EigenCAM, GradCAM, GradCAMPlusPlus,
                                  HiResCAM, LayerCAM, ScoreCAM, XGradCAM)
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
    layer = model[6]                                 # conv2's ReLU
    x = nchw(X)
    targets = [ClassifierOutputTarget(int(c)) for c in TARGETS]
    out = {}
    for cls in (GradCAM, GradCAMPlusPlus, XGradCAM, LayerCAM, HiResCAM, EigenCAM, ScoreCAM,
                AblationCAM):
        cam = cls(model=model, target_layers=[layer])
        # BaseCAM.forward up to the map at the layer (before ReLU and scaling)
        outputs = cam.activations_and_grads(x)
        if cam.uses_gradients:
            model.zero_grad()
            sum(t(o) for t, o in zip(targets, outputs)).backward(retain_graph=True)
        acts = cam.activations_and_grads.activations[0].cpu().data.numpy()
        grads = (cam.activations_and_grads.gradients[0].cpu().data.numpy()
                 if cam.uses_gradients else None)
        out["cam_" + cls.__name__] = cam.get_cam_image(x, layer, targets, acts, grads, False)
        cam.activations_and_grads.release()
    return out


def main():
    import torch
    torch.set_default_dtype(torch.float64)
    X = net.images()
    rng = np.random.RandomState(11)
    baseline = rng.uniform(0, 255, X.shape[1:]).astype(np.float32)
    baselines = rng.uniform(0, 255, (4,) + X.shape[1:]).astype(np.float32)
    model = torch_net()
    values = {"images": X, "targets": TARGETS, "baseline": baseline,
              "baselines": baselines,
              "logits": model(nchw(X)).detach().numpy()}
    from zennit.canonizers import SequentialMergeBatchNorm
    blocks = zennit_values(X, torch_blocks_net(), [SequentialMergeBatchNorm()], "blocks_lrp_")
    values["blocks_logits"] = torch_blocks_net()(nchw(net.preprocess(X))).detach().numpy()
    for part in (captum_values(model, X, baseline, baselines), zennit_values(X),
                 grad_cam_values(model, X), blocks):
        for k, v in part.items():
            values[k] = v.detach().numpy() if hasattr(v, "detach") else np.asarray(v)
    np.savez_compressed(FIXTURE, **values)
    print(f"wrote {FIXTURE}: " + ", ".join(f"{k} {v.shape}" for k, v in values.items()))


if __name__ == "__main__":
    main()
