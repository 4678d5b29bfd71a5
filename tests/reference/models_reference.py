"""Golden files for the recurrent networks (Signal.Models), made with PyTorch (Debian's python3-torch).

For each network: random float32 weights (PyTorch's own initialisation, seeded), saved
 - as <name>.safetensors in the safetensors layout with the PyTorch state_dict names (some with our
   'signal.architecture' metadata, some without, to exercise inference from names),
 - as <name>.onnx through torch.onnx.export with dynamic batch and time axes (where ONNX can express the
   network: not for LSTM projections or layer normalisation),
and a random input sequence (<name>.inputs.f32, steps x input, little-endian float32) with the
per-step softmax probabilities (<name>.probabilities.f32) and forecasts (<name>.forecasts.f32) computed
by PyTorch in float64 from the same float32 weights. <name>.json describes the shapes.
Run through generate.sh (Debian's interpreter: `command -p python3`).
"""
import json
import os
import struct
import zlib

import numpy as np
import torch
from torch import nn

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "golden", "models")


def save_safetensors(path, state, metadata):
    header = {}
    if metadata:
        header["__metadata__"] = metadata
    offset = 0
    blobs = []
    for name in sorted(state):
        arr = state[name].detach().cpu().numpy().astype("<f4")
        b = arr.tobytes()
        header[name] = {"dtype": "F32", "shape": list(arr.shape), "data_offsets": [offset, offset + len(b)]}
        offset += len(b)
        blobs.append(b)
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


class Stacked(nn.Module):
    """One torch recurrent module (num_layers, maybe bidirectional/projected) and a linear head."""

    def __init__(self, rnn, classes, last_only=False):
        super().__init__()
        self.rnn = rnn
        width = rnn.hidden_size if getattr(rnn, "proj_size", 0) == 0 else rnn.proj_size
        width *= 2 if rnn.bidirectional else 1
        self.head = nn.Linear(width, classes)
        self.last_only = last_only

    def forward(self, x):
        y, _ = self.rnn(x)
        if self.last_only:
            y = y[:, -1, :]
        return torch.softmax(self.head(y), dim=-1)

    def outputs(self, x):
        y, _ = self.rnn(x)
        return torch.softmax(self.head(y), dim=-1), None


class Mixed(nn.Module):
    """A stack of mixed kinds with layer norm on the second layer's input and a forecasting head."""

    def __init__(self, inputs, classes):
        super().__init__()
        self.layers = nn.ModuleList([nn.LSTM(inputs, 16, batch_first=True), nn.GRU(16, 12, batch_first=True),
                                     nn.RNN(12, 10, nonlinearity="relu", batch_first=True)])
        self.norms = nn.ModuleDict({"1": nn.LayerNorm(16)})
        self.head = nn.Linear(10, classes)
        self.forecast = nn.Linear(10, inputs)

    def outputs(self, x):
        y = x
        for i, layer in enumerate(self.layers):
            if str(i) in self.norms:
                y = self.norms[str(i)](y)
            y, _ = layer(y)
        return torch.softmax(self.head(y), dim=-1), self.forecast(y)


class ConvFront(nn.Module):
    """Causal dilated Conv1d front end (left padding only, ReLU, residual where asked), a GRU, and a head that sees
    the GRU's output and its running mean over the steps so far (Signal's streamable global average pooling)."""

    def __init__(self, inputs, classes, spec, hidden):
        super().__init__()
        self.spec = spec
        self.convs = nn.ModuleList()
        channels = inputs
        for out, kernel, dilation, _ in spec:
            self.convs.append(nn.Conv1d(channels, out, kernel, dilation=dilation))
            channels = out
        self.rnn = nn.GRU(channels, hidden, batch_first=True)
        self.head = nn.Linear(2 * hidden, classes)

    def forward(self, x):
        return self.outputs(x)[0]

    def recurrent(self, x):
        """The causal convolutions (zeros padded before the first step only), then the GRU's outputs."""
        y = x.transpose(1, 2)
        for conv, (_, kernel, dilation, residual) in zip(self.convs, self.spec):
            z = torch.relu(conv(nn.functional.pad(y, ((kernel - 1) * dilation, 0))))
            y = z + y if residual else z
        h, _ = self.rnn(y.transpose(1, 2))
        return h

    def outputs(self, x):
        h = self.recurrent(x)
        seen = torch.arange(1, h.shape[1] + 1, dtype=h.dtype).view(1, -1, 1)
        mean = torch.cumsum(h, dim=1) / seen
        return torch.softmax(self.head(torch.cat([h, mean], dim=-1)), dim=-1), None


class ConvPlain(ConvFront):
    """The same front end and GRU with a head on the GRU's output alone (what torch.onnx.export can express)."""

    def __init__(self, inputs, classes, spec, hidden):
        super().__init__(inputs, classes, spec, hidden)
        self.head = nn.Linear(hidden, classes)

    def outputs(self, x):
        return torch.softmax(self.head(self.recurrent(x)), dim=-1), None


def layer_arch(kind, hidden, count, prefix="rnn", proj=0, bidirectional=False, nonlinearity="tanh"):
    return [{"kind": kind, "hiddenSize": hidden, "projectionSize": proj, "bidirectional": bidirectional,
             "nonlinearity": nonlinearity, "prefix": prefix, "index": i} for i in range(count)]


def write(name, model, inputs, steps, classes, arch, onnx_ok, forecast=0):
    torch.manual_seed(zlib.crc32(name.encode()) % 1000)
    x = torch.randn(1, steps, inputs)
    state = model.state_dict()
    metadata = None
    if isinstance(arch, list):
        arch = {"inputSize": inputs, "classes": classes, "layers": arch}
    if arch is not None:
        metadata = {"signal.format": "1", "signal.architecture": json.dumps(arch),
                    "signal.labels": json.dumps([f"c{i}" for i in range(classes)])}
    save_safetensors(os.path.join(OUT, name + ".safetensors"), state, metadata)
    with torch.no_grad():
        double = model.double()
        probs, fc = double.outputs(x.double())
        model.float()
    x.numpy().astype("<f4").tofile(os.path.join(OUT, name + ".inputs.f32"))
    probs[0].numpy().astype("<f4").tofile(os.path.join(OUT, name + ".probabilities.f32"))
    if fc is not None:
        fc[0].numpy().astype("<f4").tofile(os.path.join(OUT, name + ".forecasts.f32"))
    onnx_written = False
    if onnx_ok:
        model.eval()
        torch.onnx.export(model, (x,), os.path.join(OUT, name + ".onnx"), input_names=["x"], output_names=["probabilities"],
                          dynamic_axes={"x": {0: "batch", 1: "steps"}}, opset_version=14)
        onnx_written = True
    meta = {"name": name, "steps": steps, "inputs": inputs, "classes": classes, "forecast": forecast,
            "metadata": arch is not None, "onnx": onnx_written,
            "lastOnly": bool(getattr(model, "last_only", False))}
    with open(os.path.join(OUT, name + ".json"), "w") as f:
        json.dump(meta, f, indent=1)
    print(name, "steps", steps, "onnx", onnx_written)


def main():
    os.makedirs(OUT, exist_ok=True)
    torch.manual_seed(1234)
    cases = [
        ("lstm_1x16", Stacked(nn.LSTM(8, 16, batch_first=True), 4), 8, 50, 4, layer_arch("lstm", 16, 1), True),
        ("lstm_40x64", Stacked(nn.LSTM(40, 64, batch_first=True), 6), 40, 1000, 6, None, True),
        ("lstm_2x24_proj8", Stacked(nn.LSTM(10, 24, num_layers=2, proj_size=8, batch_first=True), 3), 10, 200, 3,
         layer_arch("lstm", 24, 2, proj=8), False),
        ("gru_3x20", Stacked(nn.GRU(6, 20, num_layers=3, batch_first=True), 5), 6, 1000, 5, layer_arch("gru", 20, 3), True),
        ("rnn_relu_2x12", Stacked(nn.RNN(5, 12, num_layers=2, nonlinearity="relu", batch_first=True), 3), 5, 300, 3,
         layer_arch("rnn", 12, 2, nonlinearity="relu"), True),
        ("rnn_tanh_1x9", Stacked(nn.RNN(7, 9, batch_first=True), 2), 7, 100, 2, None, True),
        ("bilstm_2x10", Stacked(nn.LSTM(6, 10, num_layers=2, bidirectional=True, batch_first=True), 4), 6, 60, 4,
         layer_arch("lstm", 10, 2, bidirectional=True), True),
        ("bigru_1x7", Stacked(nn.GRU(4, 7, bidirectional=True, batch_first=True), 3), 4, 40, 3, None, True),
        ("lstm_last_2x32", Stacked(nn.LSTM(12, 32, num_layers=2, batch_first=True), 5, last_only=True), 12, 80, 5, None, True),
    ]
    for name, model, inputs, steps, classes, arch, onnx_ok in cases:
        write(name, model, inputs, steps, classes, arch, onnx_ok)

    mixed = Mixed(8, 3)
    arch = {"inputSize": 8, "classes": 3, "forecastSize": 8, "layers": [
        {"kind": "lstm", "hiddenSize": 16},
        {"kind": "gru", "hiddenSize": 12, "layerNorm": True},
        {"kind": "rnn", "hiddenSize": 10, "nonlinearity": "relu"}]}
    write("mixed_norm_forecast", mixed, 8, 120, 3, arch, False, forecast=8)

    spec = [(8, 3, 1, False), (8, 3, 2, True), (5, 2, 4, False)]
    conv = ConvFront(6, 4, spec, 12)
    arch = {"inputSize": 6, "classes": 4, "pooling": "mean",
            "convolutions": [{"channels": c, "kernel": k, "dilation": d, "residual": r} for c, k, d, r in spec],
            "layers": layer_arch("gru", 12, 1)}
    write("conv_gru_mean", conv, 6, 90, 4, arch, False)

    spec = [(7, 3, 1, False), (7, 2, 2, True), (7, 3, 4, True)]
    plain = ConvPlain(5, 3, spec, 10)
    arch = {"inputSize": 5, "classes": 3,
            "convolutions": [{"channels": c, "kernel": k, "dilation": d, "residual": r} for c, k, d, r in spec],
            "layers": layer_arch("gru", 10, 1)}
    write("conv_gru_onnx", plain, 5, 70, 3, arch, True)


if __name__ == "__main__":
    main()
