"""Batch scoring: a whole table through the server's compiled scorer (``batch``) in
bounded memory, as a command, a KFP component (``pipeline``) and a chart CronJob."""
