"""A handle on a running emulator for tests, benchmarks and ``make demo``.

:meth:`KubeEmu.start` launches ``python -m kubeemu`` as a subprocess on a free port, waits for
its kubeconfig, and then talks to the admin API (``/_emu/``) over HTTP with the standard library:
fault injection, watch drops, compaction, the audit log, fake-controller modes and the kubelet
stand-in.  The Kubernetes API itself is for the real clients, through :attr:`KubeEmu.kubeconfig`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

JsonDict = dict[str, Any]
MUTATING_VERBS = frozenset({"create", "update", "patch", "delete", "deletecollection"})


class EmulatorError(RuntimeError):
    """The emulator did not start, or an admin call failed."""


@dataclass
class KubeEmu:
    """A running emulator: its URL, kubeconfig, process, and admin API helpers."""

    url: str
    kubeconfig: Path
    process: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None

    # --- lifecycle ------------------------------------------------------------------------------
    @classmethod
    def start(
        cls,
        workdir: Path,
        extra_args: Iterable[str] = (),
        *,
        timeout: float = 30.0,
        env: Mapping[str, str] | None = None,
    ) -> KubeEmu:
        workdir.mkdir(parents=True, exist_ok=True)
        kubeconfig = workdir / "kubeconfig"
        log_path = workdir / "kubeemu.log"
        kubeconfig.unlink(missing_ok=True)
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "kubeemu",
                    "--port",
                    "0",
                    "--kubeconfig",
                    str(kubeconfig),
                    *extra_args,
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, **(env or {})},
            )
        deadline = time.monotonic() + timeout
        while not kubeconfig.exists():
            if process.poll() is not None:
                raise EmulatorError(f"kubeemu exited early:\n{log_path.read_text()}")
            if time.monotonic() > deadline:
                process.kill()
                raise EmulatorError(f"kubeemu did not start in {timeout}s:\n{log_path.read_text()}")
            time.sleep(0.05)
        config = yaml.safe_load(kubeconfig.read_text())
        url = config["clusters"][0]["cluster"]["server"]
        return cls(url=url, kubeconfig=kubeconfig, process=process, log_path=log_path)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def __enter__(self) -> KubeEmu:
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    # --- admin API ------------------------------------------------------------------------------
    def _call(self, method: str, path: str, body: JsonDict | None = None) -> JsonDict:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.url + path, data=data, method=method)
        request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                decoded: JsonDict = json.loads(response.read() or b"{}")
                return decoded
        except urllib.error.HTTPError as exc:
            raise EmulatorError(f"{method} {path}: {exc.code} {exc.read().decode()}") from None

    def audit(self, since: int = 0, limit: int | None = None) -> list[JsonDict]:
        """Audit records from sequence number ``since`` on (at most ``limit`` of them)."""
        query = f"since={since}" + (f"&limit={limit}" if limit is not None else "")
        records: list[JsonDict] = self._call("GET", f"/_emu/audit?{query}")["records"]
        return records

    def mark(self) -> int:
        """A position in the audit log; pass it to :meth:`audit` or :meth:`mutations`."""
        return int(self._call("GET", "/_emu/stats")["auditNext"])

    def mutations(self, since: int = 0, *, changed_only: bool = True) -> list[JsonDict]:
        """Write requests after ``since`` (by default only those that changed the store)."""
        return [
            r
            for r in self.audit(since)
            if r["verb"] in MUTATING_VERBS and (r["changed"] or not changed_only)
        ]

    def set_faults(self, rules: list[JsonDict], seed: int | None = None) -> None:
        self._call("PUT", "/_emu/faults", {"rules": rules, "seed": seed})

    def clear_faults(self) -> None:
        self._call("DELETE", "/_emu/faults")

    def drop_watches(self) -> int:
        return int(self._call("POST", "/_emu/watches/drop")["dropped"])

    def compact(self) -> int:
        return int(self._call("POST", "/_emu/compact")["compactedAt"])

    def controllers(self, **settings: Any) -> JsonDict:
        return self._call("PUT", "/_emu/controllers", settings)

    def set_pod_state(self, namespace: str, name: str, state: str, message: str = "") -> JsonDict:
        return self._call("POST", f"/_emu/pods/{namespace}/{name}/{state}", {"message": message})

    def stats(self) -> JsonDict:
        return self._call("GET", "/_emu/stats")
