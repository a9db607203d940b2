"""The embedded local stack: the operator on one machine with no cluster.

``devstack.runner`` plays the kubelet for kubeemu: it starts the processes of the pods the
operator's StatefulSets create (device servers, a DataBaseds) on this machine and reports
their state in the pod status, as a kubelet would. ``devstack.demo`` (``make demo``) puts
kubeemu, Redis, the watcher, the workers, Flower and the runner together. Nothing here is
deployed; the operator never imports it (an import-linter contract).
"""
