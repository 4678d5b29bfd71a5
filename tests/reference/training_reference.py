"""Golden files for training (Signal.Models.Training), made with PyTorch (Debian's python3-torch).

For an LSTM, a GRU, a ReLU RNN and a two-layer mixed LSTM->GRU stack with a linear head: the initial weights,
a batch of variable-length sequences, the cross-entropy loss (last valid step, or every valid step), the
gradients of every tensor (float64), and the weights after each of three optimiser steps (Adam, AdamW, SGD
with momentum), with gradient clipping by global norm. Run through generate.sh.
"""
import json
import os

import torch
from torch import nn

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "golden", "training")


class Net(nn.Module):
    def __init__(self, layers, inputs, classes):
        super().__init__()
        mods = []
        width = inputs
        for kind, hidden in layers:
            if kind == "lstm":
                mods.append(nn.LSTM(width, hidden, batch_first=True))
            elif kind == "gru":
                mods.append(nn.GRU(width, hidden, batch_first=True))
            else:
                mods.append(nn.RNN(width, hidden, nonlinearity="relu" if kind == "rnn_relu" else "tanh", batch_first=True))
            width = hidden
        self.layers = nn.ModuleList(mods)
        self.head = nn.Linear(width, classes)

    def forward(self, x):
        y = x
        for layer in self.layers:
            y, _ = layer(y)
        return self.head(y)


def loss_fn(logits, labels, lengths, every_step, weights):
    ce = nn.CrossEntropyLoss(weight=weights, reduction="sum")
    if every_step:
        total = 0.0
        wsum = 0.0
        for b in range(logits.shape[0]):
            n = lengths[b]
            total = total + ce(logits[b, :n], labels[b].repeat(n))
            wsum = wsum + (weights[labels[b]] if weights is not None else 1.0) * n
        return total / wsum
    last = torch.stack([logits[b, lengths[b] - 1] for b in range(logits.shape[0])])
    wsum = sum((weights[l] if weights is not None else 1.0) for l in labels.tolist())
    return ce(last, labels) / wsum


def case(name, layers, optimizer, every_step, clip, class_weights):
    torch.manual_seed(7)
    inputs, classes, batch, steps = 3, 3, 4, 6
    net = Net(layers, inputs, classes).double()
    x = torch.randn(batch, steps, inputs, dtype=torch.float64)
    lengths = [6, 4, 5, 2]
    for b, n in enumerate(lengths):
        x[b, n:] = 0.0
    labels = torch.tensor([0, 2, 1, 2])
    weights = torch.tensor(class_weights, dtype=torch.float64) if class_weights else None
    initial = {k: v.detach().clone() for k, v in net.state_dict().items()}
    if optimizer == "adam":
        opt = torch.optim.Adam(net.parameters(), lr=0.01)
    elif optimizer == "adamw":
        opt = torch.optim.AdamW(net.parameters(), lr=0.01, weight_decay=0.1)
    else:
        opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9, weight_decay=0.01)
    losses, grads, after = [], None, []
    for step in range(3):
        opt.zero_grad()
        loss = loss_fn(net(x), labels, lengths, every_step, weights)
        loss.backward()
        if grads is None:
            grads = {k: p.grad.detach().clone() for k, p in net.named_parameters()}
        if clip:
            nn.utils.clip_grad_norm_(net.parameters(), clip)
        opt.step()
        losses.append(loss.item())
        after.append({k: v.detach().clone() for k, v in net.state_dict().items()})
    tensor = lambda t: {"shape": list(t.shape), "data": t.flatten().tolist()}
    doc = {
        "layers": [{"kind": k, "hidden": h} for k, h in layers], "inputs": inputs, "classes": classes,
        "optimizer": optimizer, "everyStep": every_step, "clip": clip, "classWeights": class_weights,
        "x": x.flatten().tolist(), "batch": batch, "steps": steps, "lengths": lengths, "labels": labels.tolist(),
        "initial": {k: tensor(v) for k, v in initial.items()},
        "gradients": {k: tensor(v) for k, v in grads.items()},
        "losses": losses,
        "after": [{k: tensor(v) for k, v in a.items()} for a in after],
    }
    with open(os.path.join(OUT, name + ".json"), "w") as f:
        json.dump(doc, f)
    print(name, losses)


def main():
    os.makedirs(OUT, exist_ok=True)
    case("lstm_adam_last", [("lstm", 5)], "adam", False, 0.0, None)
    case("gru_adamw_every", [("gru", 4)], "adamw", True, 0.0, None)
    case("rnn_relu_sgd_clip", [("rnn_relu", 5)], "sgd", False, 0.5, [1.0, 2.0, 0.5])
    case("lstm_gru_adam_every_weighted", [("lstm", 4), ("gru", 3)], "adam", True, 1.0, [0.5, 1.0, 2.0])


if __name__ == "__main__":
    main()
