"""The TANGO side of the operator: PyTango and dsconfig behind ``TangoPort``.

The only package that imports ``tango`` and ``dsconfig`` (an import-linter contract).
``PyTangoPort`` (:mod:`workers.tango.port`) answers the reconcilers' probes and applies
device configuration; docs/tango.md describes the probes, timeouts, cache and config
semantics.
"""

from __future__ import annotations

from workers.tango.port import PyTangoPort

__all__ = ["PyTangoPort"]
