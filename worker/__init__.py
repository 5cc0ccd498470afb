"""The actor-learner worker: registers with the parameter server, acts in its own environments,
computes gradients and pushes their sum."""
