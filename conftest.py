"""The project's own tests use the journey harness as a journey author's project would."""

pytest_plugins = ["infra.local.harness"]
