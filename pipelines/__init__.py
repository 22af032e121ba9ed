"""KFP pipeline definitions; compiled specs live in pipelines/compiled/."""
