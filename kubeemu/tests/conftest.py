"""kubeemu's own test configuration: its pytest fixtures (``kubeemu``, ``kubeemu_shared``)."""

pytest_plugins = ["kubeemu.pytest_plugin"]
