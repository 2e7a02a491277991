"""Names of the telemetry tables and columns that both ``telemetry`` and ``tensorboard`` use.

Kept apart so that neither of those two modules imports the other's module for a constant (they
used to import each other)."""

# a loop's own scalars (learning rate, epsilon, ...): one float32 column each, named by the first call
TRAIN_SCALARS = "train_scalars"

# train_steps columns with one entry per actor, and the per-sample input each mean is taken over
PER_ACTOR = ("batch_count", "td_abs_mean", "reward_mean", "q_mean", "grad_norm")
