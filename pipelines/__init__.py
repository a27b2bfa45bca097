"""Apache Beam pipelines, one module per stage, and the `ccmine` command line."""
