"""Copying files to and from S3-compatible object stores: model weights and adapters into a pod's volume,
a training Job's adapter into the sink (`flotilla objects cp`, the init containers' command)."""
