"""A skconv network as a torch module: the benchmarks' reference for any graph.

``torch_module(network)`` builds one torch module per node (``nn.Conv2d`` with
its groups, ``nn.BatchNorm2d``, ``nn.MaxPool2d``, ...) and runs them in the
network's node order, adding where a residual block's branches meet; with
``copy_weights`` the modules get the skconv network's parameters and running
statistics, so their outputs can be compared. A convolution whose 'same'
padding is odd (a stride of 2 on an even size) pads the extra row and column
at the bottom and right, as skconv does; torch's own ``padding`` is symmetric,
so that padding is a ``ZeroPad2d`` of its own.
"""

import numpy as np


def torch_module(network, copy_weights=True):
    import torch
    from torch import nn

    def tensor(a):
        return torch.from_numpy(np.array(a, dtype=np.float32))

    def module(layer):
        op = layer.op
        if op == "conv":
            (ph, pw), (eh, ew) = layer.pad, layer.extra_pad
            conv = nn.Conv2d(layer.input_shape[0], layer.filters, layer.kernel_size,
                             stride=layer.stride, padding=0 if eh or ew else (ph, pw),
                             dilation=layer.dilation, groups=layer.groups, bias=layer.bias)
            if copy_weights:
                conv.weight.data = tensor(layer._w)
                if layer.bias:
                    conv.bias.data = tensor(layer._b)
            if eh or ew:
                return nn.Sequential(nn.ZeroPad2d((pw, pw + ew, ph, ph + eh)), conv)
            return conv
        if op == "batch_norm":
            cls = nn.BatchNorm2d if len(layer.input_shape) == 3 else nn.BatchNorm1d
            bn = cls(layer.input_shape[0], eps=layer.eps, momentum=layer.momentum)
            if copy_weights:
                bn.weight.data, bn.bias.data = tensor(layer._scale), tensor(layer._shift)
                bn.running_mean.data = tensor(layer.running_mean)
                bn.running_var.data = tensor(layer.running_var)
            return bn
        if op == "max_pool":
            return nn.MaxPool2d(layer.window)
        if op == "avg_pool":
            return nn.AvgPool2d(layer.window)
        if op in ("relu", "tanh", "logistic", "identity"):
            return {"relu": nn.ReLU, "tanh": nn.Tanh, "logistic": nn.Sigmoid,
                    "identity": nn.Identity}[op]()
        if op == "flatten":
            return nn.Flatten()
        if op == "global_pool":
            pool = nn.AdaptiveAvgPool2d(1) if layer.kind == "avg" else nn.AdaptiveMaxPool2d(1)
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
