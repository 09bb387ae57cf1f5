"""The `moderate` command groups (cli.py assembles them): common plumbing, train, review, registry."""
