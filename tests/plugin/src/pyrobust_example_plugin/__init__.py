"""Example pyrobust plug-in: entries are declared without importing torch; code loads on first use."""

from pyrobust.entries import Estimator, Method

#: Mean absolute error between softmax(h) and the one-hot label (Ghosh et al., AAAI 2017), a loss that is
#: robust to symmetric noise; a Table 2 row labelled "MAE".
MAE = Method("mae", "pyrobust_example_plugin.losses:MAELoss", label="MAE")

#: T_hat from the mean noisy posterior of the examples given each label.
COLUMN_MEAN = Estimator("column_mean", "pyrobust_example_plugin.losses:column_mean", needs_labels=True)
