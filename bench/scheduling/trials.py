"""The user attributes a queued Optuna trial carries (shared by the plain and stacked loops)."""

CONFIG_ATTR = "paibench_config"
HASH_ATTR = "paibench_config_hash"
ATTEMPT_ATTR = "paibench_attempt"  # the runs.attempts this trial's worker claimed
STATUS_ATTR = "paibench_status"
