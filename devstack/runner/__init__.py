"""The local kubelet of the embedded stack, and the node of a real control plane.

``plan`` (pod → command line), ``process`` (one container's process), ``podstatus`` (what a
kubelet writes in a pod's status), ``kubelet`` (the watch loop and pod status), ``logserver``
(the HTTPS endpoint behind ``kubectl logs``), ``nodeagent`` (the Node, its Lease and
heartbeat) and ``node`` (all of that as one Node of a real control plane).
"""
