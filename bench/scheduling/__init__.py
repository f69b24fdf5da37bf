"""Scheduling many runs: Optuna's trials in the results database decide who trains what.

:mod:`bench.scheduling.queue` is the one mechanism (enqueued trials, heartbeats that hand a dead
worker's run to another, retries); :mod:`bench.scheduling.pool` runs it in local processes for
``bench run`` (and in this process for one worker); ``bench worker`` runs it on many machines.
"""
