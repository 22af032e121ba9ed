"""churnops: a Kubernetes-native MLOps stack for customer-churn prediction."""

__version__ = "0.1.0"
