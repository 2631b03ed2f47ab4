"""A data set registered by importing this module: 1,000 of the embedded MNIST-5k digits, 10 classes."""

import pyrobust


def load(root=None):
    import dataclasses

    from pyrobust.data import load as load_builtin

    full = load_builtin("mnist5k", root)
    return dataclasses.replace(
        full, name="tinydigits", x_train=full.x_train[::5], y_train=full.y_train[::5],
        x_test=full.x_test[::5], y_test=full.y_test[::5],
    )


pyrobust.register_dataset(
    "tinydigits", "pyrobust_example_plugin.tinydigits:load", num_classes=10, label="tiny digits",
    noise="mnist", training=dict(model="fc", optimizer="adagrad", lr=0.01, adagrad_eps=1e-6, epochs=5),
    columns=(("none", 0.0), ("asymmetric", 0.6)), seeds=2, runtime=5, embedded=True,
)
