"""Stacked training: the runs of a grid that share a network train together as one batched
model (``bench run --stack``); each stays its own run. Importing this package imports no torch:
the CLI reads :mod:`bench.stacking.policy` at start-up."""
