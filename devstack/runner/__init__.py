"""The local kubelet of the embedded stack.

``plan`` (pod → command line), ``process`` (one container's process), ``kubelet`` (the watch loop
and pod status).
"""
