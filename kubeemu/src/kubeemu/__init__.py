"""kubeemu: an in-memory Kubernetes API server that the real clients accept.

Used by the test suite and by ``make demo`` on machines without a cluster; never deployed.
Start it with ``python -m kubeemu`` or :class:`kubeemu.testing.KubeEmu`; see README.md here for
the fidelity table.
"""
