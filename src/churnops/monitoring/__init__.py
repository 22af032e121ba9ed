"""Drift statistics shared by the model server and the canary analysis."""
