"""What the stages call around training: the report, the sample manifests, plots."""
