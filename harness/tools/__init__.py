"""Tools on top of the pipeline: the CLI, reports, bisect and bench."""
