"""Canary rollout: InferenceService adapter, Prometheus analysis, promotion and rollback."""
