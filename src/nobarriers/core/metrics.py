"""The numbers measured at every evaluated point: training and test loss and error.

Losses are mean cross-entropies in nats; errors are fractions in [0, 1] everywhere in code and
files (the tables show percent).
"""

METRICS = ("train_loss", "train_error", "test_loss", "test_error")
