"""The methods' mathematics as pure functions of tensors and arrays: losses (a3c, q_learning), n-step
returns and targets, the epsilon schedule, the Gaussian's density; and sampling.py, the one home for
action sampling. No state, no networks, no environments."""
