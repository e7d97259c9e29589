#!/usr/bin/python3
"""Exports the bench's vision models to ONNX with random weights (nothing is downloaded).

  /usr/bin/python3 bench/export_models.py [--out build/cache/bench_models] [--models a,b]
      [--force]

Writes OUT/<name>.onnx for each model (skipped when it exists, unless --force):

| name            | network                                      | input         |
| --------------- | -------------------------------------------- | ------------- |
| resnet50        | torchvision resnet50(weights=None)           | 1x3x224x224   |
| mobilenet_v2    | torchvision mobilenet_v2(weights=None)       | 1x3x224x224   |
| efficientnet_b0 | torchvision efficientnet_b0(weights=None)    | 1x3x224x224   |
| rrdb_x4         | ESRGAN-style RRDB x4 super-resolution net    | 1x3x128x128   |
|                 | (nf 32, gc 16, 4 RRDB blocks, nearest x2 x2) |               |

More torchvision architectures, not in the default list (--models NAME,...; opset 17 for
LayerNormalization): convnext_tiny, swin_t, densenet121, regnet_y_400mf, mobilenet_v3_small,
shufflenet_v2_x1_0, mnasnet1_0, googlenet, squeezenet1_1 (all 1x3x224x224). side_by_side.py
runs every model file in the output folder (--models NAME).

Weights come from torch.manual_seed(0) (torchvision's own initialisation), BatchNorm running
statistics are randomised too (so folding them into the convolutions is exercised), and the
models are exported in eval mode at opset 13 with a fixed batch of 1. Needs Debian's
python3-torch and python3-torchvision (CPU only). Prints one line per model: name, path, size.
"""
import argparse
import os
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_OUT = os.path.join(REPO, 'build', 'cache', 'bench_models')


def rrdb_x4(torch):
    """ESRGAN's RRDBNet (Wang et al. 2018) at a small width: residual-in-residual dense blocks,
    LeakyReLU 0.2, two nearest-neighbour x2 upsamplings."""
    nn = torch.nn

    class DenseBlock(nn.Module):
        def __init__(self, nf, gc):
            super().__init__()
            self.convs = nn.ModuleList(
                [nn.Conv2d(nf + i * gc, gc if i < 4 else nf, 3, 1, 1) for i in range(5)])
            self.act = nn.LeakyReLU(0.2)

        def forward(self, x):
            feats = [x]
            for i, conv in enumerate(self.convs):
                y = conv(torch.cat(feats, 1))
                if i < 4:
                    feats.append(self.act(y))
            return x + 0.2 * y

    class RRDB(nn.Module):
        def __init__(self, nf, gc):
            super().__init__()
            self.blocks = nn.Sequential(*[DenseBlock(nf, gc) for _ in range(3)])

        def forward(self, x):
            return x + 0.2 * self.blocks(x)

    class Net(nn.Module):
        def __init__(self, nf=32, gc=16, blocks=4):
            super().__init__()
            self.first = nn.Conv2d(3, nf, 3, 1, 1)
            self.body = nn.Sequential(*[RRDB(nf, gc) for _ in range(blocks)])
            self.trunk = nn.Conv2d(nf, nf, 3, 1, 1)
            self.up1 = nn.Conv2d(nf, nf, 3, 1, 1)
            self.up2 = nn.Conv2d(nf, nf, 3, 1, 1)
            self.hr = nn.Conv2d(nf, nf, 3, 1, 1)
            self.last = nn.Conv2d(nf, 3, 3, 1, 1)
            self.act = nn.LeakyReLU(0.2)

        def forward(self, x):
            f = self.first(x)
            f = f + self.trunk(self.body(f))
            f = self.act(self.up1(nn.functional.interpolate(f, scale_factor=2.0, mode='nearest')))
            f = self.act(self.up2(nn.functional.interpolate(f, scale_factor=2.0, mode='nearest')))
            return self.last(self.act(self.hr(f)))

    return Net(), (1, 3, 128, 128)


def make(name, torch, tv):
    if name == 'rrdb_x4':
        return rrdb_x4(torch)
    return getattr(tv.models, name)(weights=None), (1, 3, 224, 224)


MODELS = ['resnet50', 'mobilenet_v2', 'efficientnet_b0', 'rrdb_x4']
MORE = ['convnext_tiny', 'swin_t', 'densenet121', 'regnet_y_400mf', 'mobilenet_v3_small',
        'shufflenet_v2_x1_0', 'mnasnet1_0', 'googlenet', 'squeezenet1_1']


def export(name, path, torch, tv):
    torch.manual_seed(0)
    model, shape = make(name, torch, tv)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.1, 0.1)
    model.eval()
    x = torch.rand(*shape)
    tmp = path + '.tmp'
    torch.onnx.export(model, (x,), tmp, opset_version=13 if name in MODELS else 17,
                      input_names=['input'],
                      output_names=['output'], do_constant_folding=True)
    os.replace(tmp, path)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--out', default=DEFAULT_OUT)
    ap.add_argument('--models', default=','.join(MODELS))
    ap.add_argument('--force', action='store_true')
    a = ap.parse_args()
    names = [m for m in a.models.split(',') if m]
    for m in names:
        if m not in MODELS + MORE:
            sys.exit(f'error: --models: unknown model {m!r} (known: {", ".join(MODELS + MORE)})')
    os.makedirs(a.out, exist_ok=True)
    torch = tv = None
    for m in names:
        path = os.path.join(a.out, m + '.onnx')
        if a.force or not os.path.exists(path):
            if torch is None:
                try:
                    import torch
                    import torchvision as tv
                except ImportError as e:
                    sys.exit(f'error: {e} (apt-get install python3-torch python3-torchvision)')
                torch.set_num_threads(1)
            export(m, path, torch, tv)
        print(f'{m} {path} {os.path.getsize(path) / 1e6:.1f} MB')


if __name__ == '__main__':
    main()
