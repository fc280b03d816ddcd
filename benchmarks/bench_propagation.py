#!/usr/bin/env python
"""The propagation and CAM methods' rate (issue 26), each ratio measured side by side with
the bare model in one run (the median over rounds):

- DeepLIFT (black baseline), LRP (epsilon; epsilon-plus-flat) and DeconvNet: images/s of
  one call on ``--images`` images ÷ the raw gradient rate at the same batch size, measured
  just before and just after the call (their mean). Goal ≥ 0.9.
- Score-CAM and Ablation-CAM: the rows of one call (one per channel of the layer and image)
  per second ÷ the raw forward rate likewise. Goal ≥ 0.95. (Ablation-CAM's rows run from
  the layer to the output only, so its ratio is far above 1.)

    .venv/bin/python benchmarks/bench_propagation.py [--model efficientnet_lite0]
        [--images 16] [--cam-images 1] [--rounds 3] [--out FILE]
        [--torch-python /path/to/python]

With ``--torch-python`` (an interpreter where torch, torchvision, Captum, Zennit and
pytorch-grad-cam import; see tests/record_propagation_reference.py) it also times the
references on a torchvision ResNet-18 with seeded random weights at 224 x 224 and ours on
the same weights (written as a .pth and loaded by ``get_model('resnet18')``), seconds per
image on this CPU: a figure of interest, not a goal (different frameworks).
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402

from bench_common import ROOT, emit, fmt, graph_model, log, raw_rate  # noqa: E402

BATCH = 16
GRADIENT_GOAL, FORWARD_GOAL = 0.9, 0.95


def methods(model):
    """``(name, factory, call keywords, kind)``: kind 'gradient' (images/s) or 'rows'."""
    from attrkit.methods import cam, lrp, propagation
    layer = model.layers[model.default_layers["gradcam"]]
    x, out = model.imgs, model.logits
    return (
        ("DeepLIFT", lambda s: propagation.DeepLIFT(s, x, out, None, progress=False), {},
         "gradient"),
        ("LRP epsilon", lambda s: lrp.LRP(s, x, out, None, rules=("epsilon",),
                                          progress=False), dict(rule="epsilon"), "gradient"),
        ("LRP epsilon_plus_flat", lambda s: lrp.LRP(s, x, out, None,
                                                    rules=("epsilon_plus_flat",),
                                                    progress=False),
         dict(rule="epsilon_plus_flat"), "gradient"),
        ("DeconvNet", lambda s: propagation.DeconvNet(s, x, out, None, progress=False), {},
         "gradient"),
        ("ScoreCAM", lambda s: cam.ScoreCAM(s, x, out, None, layer, progress=False), {},
         "rows"),
        ("AblationCAM", lambda s: cam.AblationCAM(s, x, out, None, layer, progress=False), {},
         "rows"))


def measure(model, sess, X, cam_images, rounds):
    """``{name: [ratio per round]}`` and ``{name: work per call}``."""
    t = sess.run(model.logits, {model.imgs: X}).argmax(1)
    channels = int(model.layers[model.default_layers["gradcam"]].shape[-1])
    ratios, work = {}, {}
    with sess.graph.as_default():
        built = [(name, make(sess), kw, kind) for name, make, kw, kind in methods(model)]
        for name, method, kw, kind in built:                 # warm up
            method(X[:2], batch_size=BATCH, target_class=t[:2], **kw)
        for r in range(rounds):
            for name, method, kw, kind in built:
                images = X if kind == "gradient" else X[:cam_images]
                n = len(images) if kind == "gradient" else len(images) * channels
                raw = "gradient" if kind == "gradient" else "forward"
                before = raw_rate(model, sess, X, raw, BATCH, n)
                t0 = time.perf_counter()
                method(images, batch_size=BATCH, target_class=t[:len(images)], **kw)
                rate = n / (time.perf_counter() - t0)
                after = raw_rate(model, sess, X, raw, BATCH, n)
                ratios.setdefault(name, []).append(rate / ((before + after) / 2))
                work[name] = (n, "images" if kind == "gradient" else "rows")
                log(f"round {r}: {name}: {n} {work[name][1]}, {rate:.1f}/s, ratio "
                    f"{ratios[name][-1]:.3f}")
    return ratios, work


def report(model_name, X, ratios, work, references=None):
    lines = [f"# Propagation and CAM methods: rate ÷ the raw model's (batch {BATCH})", "",
             f"Model {model_name}, images {list(X.shape[1:])}; median over "
             f"{len(next(iter(ratios.values())))} rounds. DeepLIFT, LRP and DeconvNet: "
             f"images/s ÷ raw gradient images/s, goal ≥ {GRADIENT_GOAL}; Score-CAM and "
             f"Ablation-CAM: rows/s ÷ raw forward rows/s, goal ≥ {FORWARD_GOAL}.", "",
             "| method | work per call | ratio (median) | rounds | goal |",
             "| --- | --- | --- | --- | --- |"]
    for name, rs in ratios.items():
        med = float(np.median(rs))
        goal = GRADIENT_GOAL if work[name][1] == "images" else FORWARD_GOAL
        lines.append(f"| {name} | {work[name][0]} {work[name][1]} | {fmt(med)} | "
                     f"{', '.join(fmt(v) for v in rs)} | "
                     f"{'met' if med >= goal else 'not met'} (≥ {goal}) |")
    if references:
        lines += ["", "## Beside the references (a figure of interest, not a goal)", "",
                  "torchvision ResNet-18, seeded random weights, 224 x 224, "
                  f"{references['images']} images (CAMs: 1 image, layer4's 512 channels); "
                  "seconds per image on this CPU, the same weights in both.", "",
                  "| method | reference | reference s/image | ours s/image | ours ÷ reference |",
                  "| --- | --- | --- | --- | --- |"]
        for name, (ref_name, ref_s, ours_s) in references["rows"].items():
            lines.append(f"| {name} | {ref_name} | {fmt(ref_s)} | {fmt(ours_s)} | "
                         f"{fmt(ours_s / ref_s)} |")
    return "\n".join(lines) + "\n"


# -------------------------------------------------------- beside the PyTorch references

REFERENCE_SCRIPT = r'''
import json, sys, time, warnings
import numpy as np, torch, torchvision
warnings.filterwarnings("ignore")
torch.set_num_threads(int(sys.argv[3]))
path, n = sys.argv[1], int(sys.argv[2])
model = torchvision.models.resnet18(num_classes=7)
model.load_state_dict(torch.load(path, weights_only=True))
model.eval()
import types                 # Captum's DeepLift needs each ReLU module used once
def block_forward(self, x):
    identity = x if self.downsample is None else self.downsample(x)
    out = self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x)))))
    return self.relu2(out + identity)
model.relu = torch.nn.ReLU()
for m in model.modules():
    if isinstance(m, torchvision.models.resnet.BasicBlock):
        m.relu, m.relu2 = torch.nn.ReLU(), torch.nn.ReLU()
        m.forward = types.MethodType(block_forward, m)
X = torch.tensor(np.load(path + ".npy")).permute(0, 3, 1, 2).contiguous()
t = model(X).argmax(1)
from captum.attr import DeepLift, Deconvolution
from zennit.attribution import Gradient
from zennit.composites import EpsilonPlusFlat
from zennit.torchvision import ResNetCanonizer
from pytorch_grad_cam import ScoreCAM, AblationCAM
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
def timed(fn, images):
    fn(); t0 = time.perf_counter(); fn(); return (time.perf_counter() - t0) / images
out = {}
out["DeepLIFT"] = ("Captum DeepLift", timed(lambda: DeepLift(model).attribute(
    X.clone().requires_grad_(True), X * 0, target=t), n))
out["DeconvNet"] = ("Captum Deconvolution", timed(lambda: Deconvolution(model).attribute(
    X.clone().requires_grad_(True), target=t), n))
def lrp():
    with Gradient(model, EpsilonPlusFlat(canonizers=[ResNetCanonizer()])) as attributor:
        attributor(X.clone().requires_grad_(True),
                   torch.nn.functional.one_hot(t, 7).double() if X.dtype == torch.float64
                   else torch.nn.functional.one_hot(t, 7).float())
out["LRP epsilon_plus_flat"] = ("Zennit EpsilonPlusFlat", timed(lrp, n))
targets = [ClassifierOutputTarget(int(t[0]))]
for name, cls in (("ScoreCAM", ScoreCAM), ("AblationCAM", AblationCAM)):
    cam = cls(model=model, target_layers=[model.layer4])
    cam.batch_size = 16
    out[name] = ("pytorch-grad-cam " + name, timed(lambda: cam(X[:1], targets), 1))
print(json.dumps(out))
'''


def beside_references(torch_python, images, threads):
    """``{'images': n, 'rows': {name: (reference, ref s/image, ours s/image)}}``."""
    sys.path.insert(0, os.path.join(ROOT, "tests"))
    import resnet_ref
    from torch_writer import write_state_dict
    state = resnet_ref.reference_state("resnet18")
    X = np.random.default_rng(0).uniform(0, 255, (images, 224, 224, 3)).astype(np.float32)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "resnet18.pth")
        write_state_dict(path, state, "zip")
        # torchvision's own preprocessing is not in the reference: feed it normalised
        # images, and ours the same numbers with preprocess='none'
        pre = (X / 255.0 - np.array([0.485, 0.456, 0.406])) / np.array([0.229, 0.224, 0.225])
        np.save(path + ".npy", pre.astype(np.float32))
        log("timing the references in " + torch_python)
        res = subprocess.run([torch_python, "-c", REFERENCE_SCRIPT, path, str(images),
                              str(threads)], capture_output=True, text=True)
        if res.returncode:
            raise SystemExit("the references failed in " + torch_python + ":\n"
                             + res.stderr[-3000:])
        ref = json.loads(res.stdout.strip().splitlines()[-1])
        ours = time_ours(path, pre.astype(np.float32))
    return {"images": images, "rows": {k: (ref[k][0], ref[k][1], ours[k]) for k in ref}}


def time_ours(path, X):
    import tensorflow as tf
    from hw3_utils import get_model
    sess = tf.compat.v1.Session(graph=tf.Graph())
    with sess.graph.as_default():
        model = get_model(sess, "resnet18", path, preprocess="none", input_size=(224, 224))
        t = sess.run(model.logits, {model.imgs: X}).argmax(1)
        out = {}
        for name, make, kw, kind in methods(model):
            if name == "LRP epsilon":
                continue
            method = make(sess)
            images = X if kind == "gradient" else X[:1]

            def call():
                method(images, batch_size=BATCH, target_class=t[:len(images)], **kw)
            call()
            t0 = time.perf_counter()
            call()
            out[name] = (time.perf_counter() - t0) / len(images)
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="efficientnet_lite0",
                   help="efficientnet_lite0 (default) or vgg16_random")
    p.add_argument("--images", type=int, default=16, help="images per call (default 16)")
    p.add_argument("--cam-images", type=int, default=1,
                   help="images per Score-CAM / Ablation-CAM call (default 1)")
    p.add_argument("--rounds", type=int, default=3, help="rounds (default 3)")
    p.add_argument("--torch-python", help="an interpreter with torch and the references")
    p.add_argument("--out", help="also write the table (Markdown) to this file")
    args = p.parse_args(argv)
    sess, model, X = graph_model(args.model)
    X = X[np.arange(args.images) % len(X)]
    ratios, work = measure(model, sess, X, args.cam_images, args.rounds)
    references = (beside_references(args.torch_python, 4, os.cpu_count())
                  if args.torch_python else None)
    emit(report(args.model, X, ratios, work, references), args.out)


if __name__ == "__main__":
    main()
