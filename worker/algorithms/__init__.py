"""Losses and targets as pure functions of tensors and arrays, one module per method."""
