"""Batch scoring: a whole table through the server's compiled scorer (``batch``), in
bounded memory, or on Spark through ``mlflow.pyfunc.spark_udf`` (``spark``)."""
