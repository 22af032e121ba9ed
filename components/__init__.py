"""KFP components of the churn training pipeline (see components/README.md)."""
