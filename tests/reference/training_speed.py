"""Seconds per training epoch of PyTorch 1.13 on CPU, one thread, for the model and data `signal-edge train`
uses by default (one LSTM layer of 64, a linear head, AdamW, batches of 16, cross-entropy at the last step),
on a UEA ARFF or UCR folder. Compare with `signal-edge train ... --threads 1` (its s/epoch column).

usage: command -p python3 training_speed.py <data folder> [epochs]
"""
import glob
import os
import sys
import time

import numpy as np
import torch
from torch import nn


def load(folder):
    arff = glob.glob(os.path.join(folder, "*_TRAIN.arff"))
    if arff:
        xs, ys = [], []
        data = False
        for line in open(arff[0]):
            line = line.strip()
            if not data:
                data = line.lower().startswith("@data")
                continue
            if not line:
                continue
            body, label = line[1:line.rindex("'")], line[line.rindex("'") + 2:]
            channels = [np.array([float(v) for v in c.split(",")]) for c in body.split("\\n")]
            xs.append(np.stack(channels, axis=1))
            ys.append(label)
        return xs, ys
    tsv = glob.glob(os.path.join(folder, "*_TRAIN.tsv"))[0]
    xs, ys = [], []
    for line in open(tsv):
        cells = line.rstrip("\n").split("\t")
        v = np.array([float(c) for c in cells[1:]])
        v = v[~np.isnan(v)]
        xs.append(v[:, None])
        ys.append(cells[0])
    return xs, ys


def main():
    folder = sys.argv[1]
    epochs = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    cell = sys.argv[3] if len(sys.argv) > 3 else "lstm"
    torch.set_num_threads(1)
    torch.manual_seed(1)
    xs, ys = load(folder)
    labels = sorted(set(ys))
    y = torch.tensor([labels.index(v) for v in ys])
    steps = max(len(x) for x in xs)
    channels = xs[0].shape[1]
    x = torch.zeros(len(xs), steps, channels)
    lengths = torch.tensor([len(v) for v in xs])
    for i, v in enumerate(xs):
        x[i, :len(v)] = torch.tensor(v, dtype=torch.float32)

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = (nn.GRU if cell == "gru" else nn.LSTM)(channels, 64, batch_first=True)
            self.head = nn.Linear(64, len(labels))

        def forward(self, inputs, lengths):
            out, _ = self.rnn(inputs)
            return self.head(out[torch.arange(len(lengths)), lengths - 1])

    net = Net()
    opt = torch.optim.AdamW(net.parameters(), lr=3e-3, weight_decay=1e-4)
    loss_fn = nn.CrossEntropyLoss()
    times = []
    for epoch in range(epochs):
        order = torch.randperm(len(xs))
        start = time.perf_counter()
        for b in range(0, len(xs), 16):
            idx = order[b:b + 16]
            n = int(lengths[idx].max())
            opt.zero_grad()
            loss = loss_fn(net(x[idx, :n], lengths[idx]), y[idx])
            loss.backward()
            nn.utils.clip_grad_norm_(net.parameters(), 1.0)
            opt.step()
        times.append(time.perf_counter() - start)
    print(f"pytorch {torch.__version__} one thread, {cell.upper()} 64: {len(xs)} sequences x {steps} steps x {channels} channels, "
          f"best {min(times):.4f} s/epoch, median {sorted(times)[len(times) // 2]:.4f} s/epoch")


if __name__ == "__main__":
    main()
