"""A skconv network as a torch module: the benchmarks' reference for any graph.

``torch_module(network)`` builds one torch module per node (``nn.Conv2d`` with
its groups, ``nn.BatchNorm2d``, ``nn.MaxPool2d``, ...) and runs them in the
network's node order, adding where a residual block's branches meet; with
``copy_weights`` the modules get the skconv network's parameters and running
statistics, so their outputs can be compared. A convolution whose 'same'
padding is odd (a stride of 2 on an even size) pads the extra row and column
at the bottom and right, as skconv does; torch's own ``padding`` is symmetric,
so that padding is a ``ZeroPad2d`` of its own.

With ``series``, a network of series (every feature map of height 1, kernels
(1, k)) becomes the torch module of series: ``nn.Conv1d``, ``nn.BatchNorm1d``,
``nn.MaxPool1d``, ``nn.AdaptiveAvgPool1d``, ... on inputs of shape (n, c,
length), as a torch user writes it.
"""

import numpy as np


def torch_module(network, copy_weights=True, series=False):
    import torch
    from torch import nn

    dims = "1d" if series else "2d"

    def cls(name):
        """torch's class of that name for the graph's dimensions: Conv -> nn.Conv1d or nn.Conv2d."""
        return getattr(nn, name + dims)

    def axes(pair):
        """A (height, width) pair as torch takes it: the width alone for series."""
        return pair[1] if series else pair

    def tensor(a):
        return torch.from_numpy(np.array(a, dtype=np.float32))

    def module(layer):
        op = layer.op
        if op == "conv":
            (ph, pw), (eh, ew) = layer.pad, layer.extra_pad
            conv = cls("Conv")(layer.input_shape[0], layer.filters, axes(layer.kernel_size),
                               stride=axes(layer.stride),
                               padding=0 if eh or ew else axes((ph, pw)),
                               dilation=axes(layer.dilation), groups=layer.groups,
                               bias=layer.bias)
            if copy_weights:
                conv.weight.data = tensor(layer._w[:, :, 0] if series else layer._w)
                if layer.bias:
                    conv.bias.data = tensor(layer._b)
            if eh or ew:
                pad = ((nn.ConstantPad1d((pw, pw + ew), 0.0)) if series
                       else nn.ZeroPad2d((pw, pw + ew, ph, ph + eh)))
                return nn.Sequential(pad, conv)
            return conv
        if op == "batch_norm":
            norm = (nn.BatchNorm2d if len(layer.input_shape) == 3 and not series
                    else nn.BatchNorm1d)
            bn = norm(layer.input_shape[0], eps=layer.eps, momentum=layer.momentum)
            if copy_weights:
                bn.weight.data, bn.bias.data = tensor(layer._scale), tensor(layer._shift)
                bn.running_mean.data = tensor(layer.running_mean)
                bn.running_var.data = tensor(layer.running_var)
            return bn
        if op == "max_pool":
            return cls("MaxPool")(axes(layer.window))
        if op == "avg_pool":
            return cls("AvgPool")(axes(layer.window))
        if op in ("relu", "tanh", "logistic", "identity"):
            return {"relu": nn.ReLU, "tanh": nn.Tanh, "logistic": nn.Sigmoid,
                    "identity": nn.Identity}[op]()
        if op == "flatten":
            return nn.Flatten()
        if op == "global_pool":
            pool = cls("AdaptiveAvgPool" if layer.kind == "avg" else "AdaptiveMaxPool")(1)
            return nn.Sequential(pool, nn.Flatten())
        if op == "dense":
            linear = nn.Linear(layer.input_shape[0], layer.units, bias=layer.bias)
            if copy_weights:
                linear.weight.data = tensor(layer._w.T)
                if layer.bias:
                    linear.bias.data = tensor(layer._b)
            return linear
        if op == "dropout":
            return nn.Dropout(layer.rate)
        if op == "add":
            return None
        raise TypeError(f"no torch equivalent of {type(layer).__name__}")

    class Graph(nn.Module):
        def __init__(self):
            super().__init__()
            self.steps = [(node.name.replace(".", "_"), node.inputs) for node in network.nodes]
            self.layers = nn.ModuleDict({name: m for (name, _), node in
                                         zip(self.steps, network.nodes)
                                         if (m := module(node.layer)) is not None})
            self.output = self.steps[-1][0]

        def forward(self, x):
            values = {"input": x}
            for name, inputs in self.steps:
                args = [values[i.replace(".", "_")] for i in inputs]
                values[name] = (self.layers[name](*args) if name in self.layers
                                else args[0] + args[1])
            return values[self.output]

    return Graph()
