"""Make the real-torch fixtures under tests/data/ (run only where torch is installed).

    python tests/make_torch_fixtures.py        # torch (CPU) and numpy; no torchvision

Writes, all small:

- ``torch_tiny.pth`` (zip format), ``torch_tiny_legacy.pth`` (legacy format): the
  ``state_dict()`` of a small module (conv + BN, so the pickle carries torch's
  ``_metadata``) plus float16, int64, bfloat16, a transposed (non-contiguous) view and a
  row view at a storage offset; ``torch_tiny_wrapped.pth``: ``{'state_dict': {'module.' +
  key: ...}, 'epoch': 3}``; ``torch_tiny_expected.npz``: the arrays each key must read as.
- ``resnet_reference.npz``: for torchvision's ResNet-18 and ResNet-50 (written here in
  plain torch with torchvision's module names; ``load_state_dict(strict=True)`` checks
  them against ``tests/resnet_ref.py``), the eval-mode logits of ``reference_images()``
  with the weights ``resnet_ref.reference_state(arch)``.

The tests read these files with the project's torch-free reader; they never import torch.
"""
import os
import sys

import numpy as np
import torch
from torch import nn

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import resnet_ref  # noqa: E402

DATA = os.path.join(HERE, "data")


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, in_ch, width, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, width, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU()
        self.downsample = _downsample(in_ch, width, stride)

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        skip = x if self.downsample is None else self.downsample(x)
        return self.relu(out + skip)


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, in_ch, width, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride, 1, bias=False)   # v1.5: stride here
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, width * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(width * 4)
        self.relu = nn.ReLU()
        self.downsample = _downsample(in_ch, width * 4, stride)

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        skip = x if self.downsample is None else self.downsample(x)
        return self.relu(out + skip)


def _downsample(in_ch, out_ch, stride):
    if stride == 1 and in_ch == out_ch:
        return None
    return nn.Sequential(nn.Conv2d(in_ch, out_ch, 1, stride, bias=False),
                         nn.BatchNorm2d(out_ch))


class ResNet(nn.Module):
    """torchvision.models.ResNet's structure and names."""

    def __init__(self, block, repeats, num_classes):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU()
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        in_ch = 64
        for i, (n, width) in enumerate(zip(repeats, (64, 128, 256, 512)), start=1):
            blocks = []
            for b in range(n):
                blocks.append(block(in_ch, width, 2 if (b == 0 and i > 1) else 1))
                in_ch = width * block.expansion
            setattr(self, "layer{}".format(i), nn.Sequential(*blocks))
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(in_ch, num_classes)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def torchvision_preprocess(images):
    """RGB 0-255 [N, H, W, 3] -> torchvision's normalised NCHW tensor."""
    x = torch.from_numpy(images).permute(0, 3, 1, 2) / 255.0
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    return (x - mean) / std


def make_resnet_reference():
    images = resnet_ref.reference_images()
    out = {"images": images}
    for arch in ("resnet18", "resnet50"):
        kind, repeats = resnet_ref.ARCHS[arch]
        model = ResNet(BasicBlock if kind == "basic" else Bottleneck, repeats,
                       resnet_ref.NUM_CLASSES)
        state = {k: torch.from_numpy(v) for k, v in resnet_ref.reference_state(arch).items()}
        model.load_state_dict(state, strict=True)
        model.eval()
        with torch.no_grad():
            out[arch] = model(torchvision_preprocess(images)).numpy()
        print(arch, "logits", out[arch].round(3).tolist())
    np.savez_compressed(os.path.join(DATA, "resnet_reference.npz"), **out)


def make_tiny():
    torch.manual_seed(0)
    module = nn.Sequential(nn.Conv2d(2, 3, 3), nn.BatchNorm2d(3))
    module[1].running_mean.normal_()
    state = module.state_dict()
    base = torch.arange(12, dtype=torch.float32).reshape(3, 4) / 4 - 1
    state["extra.half"] = torch.linspace(-2, 2, 5).half()
    state["extra.long"] = torch.tensor([7, -3, 2 ** 40])
    state["extra.bf16"] = torch.tensor([1.5, -0.375, 3e4]).bfloat16()
    state["extra.transposed"] = base.t()            # non-contiguous view
    state["extra.row"] = base[1]                    # view at storage offset 4
    torch.save(state, os.path.join(DATA, "torch_tiny.pth"))
    torch.save(state, os.path.join(DATA, "torch_tiny_legacy.pth"),
               _use_new_zipfile_serialization=False)
    wrapped = {"state_dict": {"module." + k: v for k, v in state.items()}, "epoch": 3}
    torch.save(wrapped, os.path.join(DATA, "torch_tiny_wrapped.pth"))
    expected = {k: v.float().numpy() if v.dtype == torch.bfloat16 else v.numpy()
                for k, v in state.items()}
    np.savez(os.path.join(DATA, "torch_tiny_expected.npz"), **expected)


if __name__ == "__main__":
    os.makedirs(DATA, exist_ok=True)
    print("torch", torch.__version__)
    make_tiny()
    make_resnet_reference()
