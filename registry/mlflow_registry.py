"""The ``dermeval`` registered model: versions, the challenger and champion aliases, decisions.

Every alias move happens under an exclusive lock and re-reads the champion inside it, so
two pipelines finishing at once cannot lose an update: the second is gated against
whatever the first made champion, and is told so. Every decision and alias move is
written as model-version tags and to the append-only audit log.
"""

from __future__ import annotations

import os
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dermeval.audit import AuditLog, actor, exclusive
from dermeval.params import GateParams
from dermeval.redact import masked
from dermeval.schema import DIMENSIONS
from registry.gate import Decision, decide

CHAMPION = "champion"
CHALLENGER = "challenger"
# The figures a reader sees first for a version (its MLflow run's metrics).
HEADLINE = ("overall_mae", *(f"mae_{d}" for d in DIMENSIONS), "unsafe_recall", "gen_transfer_overall_mae",
            "gen_stress_accuracy", "n_test")


def _v(mv) -> str | None:
    """A model version's number as a string (None for no version)."""
    return str(mv.version) if mv is not None else None


class TrackingUnavailable(RuntimeError):
    """The tracking server or database cannot be reached; nothing has been written."""


def _absent(exc: Exception) -> bool:
    """Whether an MLflow error says "no such model, version or alias" (and not "could not read")."""
    code = getattr(exc, "error_code", "")
    return code == "RESOURCE_DOES_NOT_EXIST" or (code == "INVALID_PARAMETER_VALUE" and "not found" in str(exc))


class RegistryError(RuntimeError):
    """A reviewer's request the registry cannot honour (unknown version, nothing to roll back to)."""


def resolve_tracking_uri(configured: str) -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or configured


def check_reachable(uri: str, timeout: float = 5.0) -> None:
    """Raise :class:`TrackingUnavailable` naming the URI if the tracking backend cannot be reached."""
    try:
        if uri.startswith(("http://", "https://")):
            with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=timeout) as resp:
                if resp.status != 200:
                    raise TrackingUnavailable(f"MLflow tracking server {masked(uri)} answered HTTP {resp.status}")
        elif uri.startswith(("postgresql", "mysql", "mssql")):
            import sqlalchemy

            engine = sqlalchemy.create_engine(uri, connect_args={"connect_timeout": int(timeout)}
                                              if uri.startswith("postgresql") else {})
            with engine.connect():
                pass
            engine.dispose()
        elif uri.startswith("sqlite:///"):
            folder = Path(uri.removeprefix("sqlite:///")).parent
            if not folder.is_dir():
                raise TrackingUnavailable(f"MLflow tracking database {uri}: folder {folder} does not exist")
    except TrackingUnavailable:
        raise
    except (urllib.error.URLError, OSError) as exc:
        raise TrackingUnavailable(f"MLflow tracking server {masked(uri)} is unreachable: "
                                  f"{getattr(exc, 'reason', exc)}") from None
    except Exception as exc:  # database drivers raise their own error types
        raise TrackingUnavailable(f"MLflow tracking database {masked(uri)} is unreachable: "
                                  f"{type(exc).__name__}: {str(exc).splitlines()[0]}") from None


@dataclass
class Registry:
    tracking_uri: str
    model_name: str = "dermeval"
    audit_log: Path | str = "data/registry/audit.jsonl"

    def __post_init__(self) -> None:
        from mlflow import MlflowClient

        self.client = MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.tracking_uri)
        self.audit = AuditLog(self.audit_log)
        self.lock_path = Path(self.audit_log).with_name(".registry.lock")

    # -- reading ---------------------------------------------------------------------------
    def _unreadable(self, what: str, exc: Exception) -> TrackingUnavailable:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return TrackingUnavailable(f"cannot read {what} of registered model {self.model_name!r} from "
                                   f"{masked(self.tracking_uri)}: {first}")

    def version_of(self, alias: str):
        """The version holding ``alias``; None only when the registry says there is none.

        Fails closed: an error reading the registry (a server answering 503, a broken
        database) raises :class:`TrackingUnavailable`, never reads as "no champion".
        """
        try:
            return self.client.get_model_version_by_alias(self.model_name, alias)
        except Exception as exc:
            if _absent(exc):
                return None
            raise self._unreadable(f"alias {alias!r}", exc) from None

    def version(self, version: str | int):
        try:
            return self.client.get_model_version(self.model_name, str(version))
        except Exception as exc:
            if _absent(exc):
                raise RegistryError(f"{self.model_name} has no version {version}") from None
            raise self._unreadable(f"version {version}", exc) from None

    def metrics_of(self, version) -> dict[str, float]:
        if not version or not version.run_id:
            return {}
        try:
            return dict(self.client.get_run(version.run_id).data.metrics)
        except Exception as exc:
            raise self._unreadable(f"the metrics of v{version.version}", exc) from None

    def versions(self) -> list:
        try:
            found = self.client.search_model_versions(f"name = '{self.model_name}'")
        except Exception as exc:
            if _absent(exc):
                return []
            raise self._unreadable("the versions", exc) from None
        return sorted(found, key=lambda v: int(v.version))

    def status(self) -> dict[str, Any]:
        champ, chall = self.version_of(CHAMPION), self.version_of(CHALLENGER)
        aliases = {CHAMPION: _v(champ), CHALLENGER: _v(chall)}
        rows = []
        for v in self.versions():
            m = self.metrics_of(v)
            rows.append({"version": _v(v), "run_id": v.run_id, "created": v.creation_timestamp,
                         "aliases": [a for a, at in aliases.items() if at == _v(v)],
                         "gate": v.tags.get("gate.decision"),
                         "overall_mae": m.get("overall_mae"), "mae_safety": m.get("mae_safety"),
                         "metrics": {k: m[k] for k in HEADLINE if k in m}})
        return {"model": self.model_name, "tracking_uri": masked(self.tracking_uri),
                "champion": _v(champ), "challenger": _v(chall),
                "versions": rows}

    def history(self) -> list[dict[str, Any]]:
        return [e for e in self.audit.entries() if e.get("model") == self.model_name]

    # -- writing ---------------------------------------------------------------------------
    def _record(self, event: str, version: str | None, by: str, reason: str, **extra: Any) -> dict[str, Any]:
        return self.audit.append(event, model=self.model_name, version=version, by=by, reason=reason,
                                 tracking_uri=masked(self.tracking_uri), **extra)

    def _tag(self, version: str, tags: dict[str, Any]) -> None:
        for k, v in tags.items():
            self.client.set_model_version_tag(self.model_name, version, k, str(v)[:4900])

    def register(self, model_uri: str, run_id: str, tags: dict[str, str] | None = None,
                 model_id: str | None = None) -> str:
        """Create a version from a logged model and point ``challenger`` at it."""
        from mlflow.exceptions import MlflowException

        try:
            self.client.create_registered_model(self.model_name, description="DermEval: reference-free "
                                                "multimodal evaluator of dermatology narratives.")
        except MlflowException as exc:
            if "already exists" not in str(exc).lower() and "RESOURCE_ALREADY_EXISTS" not in str(exc):
                raise
        mv = self.client.create_model_version(self.model_name, source=model_uri, run_id=run_id, tags=tags or {},
                                              model_id=model_id)
        try:
            previous = self.version_of(CHALLENGER)
            self.client.set_registered_model_alias(self.model_name, CHALLENGER, str(mv.version))
            self._record("register", str(mv.version), actor(), "new version from the pipeline",
                         run_id=run_id, previous_challenger=_v(previous))
        except Exception:
            self.client.delete_model_version(self.model_name, mv.version)  # no half-registered version
            raise
        return str(mv.version)

    def _move_champion(self, version: str, previous: str | None, by: str, reason: str, event: str) -> None:
        self.client.set_registered_model_alias(self.model_name, CHAMPION, version)
        self._tag(version, {"champion.since": self._now(), "champion.by": by, "champion.reason": reason,
                            "champion.previous": previous or ""})
        if previous and previous != version:
            self._tag(previous, {"champion.replaced_by": version, "champion.replaced_at": self._now()})
        self._record(event, version, by, reason, previous_champion=previous)

    @staticmethod
    def _now() -> str:
        from datetime import UTC, datetime

        return datetime.now(UTC).isoformat(timespec="seconds")

    def gate_and_promote(self, version: str, report: dict[str, Any], params: GateParams,
                         seen_champion: str | None = None, by: str | None = None,
                         experiment: str | None = None, generalisation: dict[str, float] | None = None,
                         compare: Callable[[str], dict[str, Any]] | None = None,
                         ) -> tuple[Decision, str | None]:
        """Gate ``version`` against the current champion and promote it if every check passes.

        ``compare(champion_version)`` re-scores that champion on the challenger's test rows and
        returns :func:`dermeval.evaluation.paired_comparison`'s report; it runs under the lock,
        against the champion read there. Without it, or when it raises, the paired checks fail.

        An ``experiment`` (``dvc exp run``) proposes, it does not promote: its verdict is recorded
        and the champion stays; a reviewer promotes it with ``dermeval registry promote``.
        Returns the decision and, when the champion changed between ``seen_champion`` (what
        the caller saw when it started) and now, or for an experiment, a message saying so.
        """
        by = actor(by)
        with exclusive(self.lock_path):
            champ = self.version_of(CHAMPION)
            champ_v = _v(champ)
            note = None
            if champ_v != seen_champion:
                before = "v" + seen_champion if seen_champion else "none"
                note = (f"the champion moved from {before} to v{champ_v} while this run was working; "
                        f"v{version} was gated against v{champ_v}")
            paired = None
            if champ_v:
                try:
                    paired = compare(champ_v) if compare else None
                except Exception as exc:  # not compared is not passed: the check says why
                    first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
                    paired = {"error": f"{type(exc).__name__}: {first}"}
            decision = decide(report, params, paired, champ_v, generalisation)
            decision.paired = paired
            self._tag(version, {"gate.decision": "passed" if decision.passed else "failed",
                                "gate.reasons": "; ".join(decision.reasons) or "all checks passed",
                                "gate.champion_before": champ_v or "", "gate.by": by, "gate.time": self._now()})
            reason = ("gate passed" if decision.passed else "gate failed: " + "; ".join(decision.reasons))
            if experiment:
                self._tag(version, {"experiment": experiment})
                note = (f"experiment {experiment!r}: verdict recorded, champion unchanged"
                        + (f"; promote with `dermeval registry promote {version} --reason ...`"
                           if decision.passed else ""))
            self._record("gate", version, by, reason, passed=decision.passed, champion_before=champ_v,
                         checks=len(decision.checks), note=note, experiment=experiment)
            if decision.passed and not experiment:
                self._move_champion(version, champ_v, by, "gate passed", "promote")
        return decision, note

    def promote(self, version: str | int, reason: str, by: str | None = None) -> str | None:
        """A reviewer makes ``version`` champion (the gate is not re-run); returns the previous champion."""
        if not reason.strip():
            raise RegistryError("a promotion needs a reason")
        version = _v(self.version(version)) or str(version)
        by = actor(by)
        with exclusive(self.lock_path):
            champ = self.version_of(CHAMPION)
            previous = _v(champ)
            if previous == version:
                raise RegistryError(f"v{version} is already the champion")
            self._move_champion(version, previous, by, reason, "promote_manual")
        return previous

    def rollback(self, reason: str, by: str | None = None) -> tuple[str, str]:
        """Give the champion alias back to the version that held it before; returns (from, to)."""
        if not reason.strip():
            raise RegistryError("a rollback needs a reason")
        by = actor(by)
        with exclusive(self.lock_path):
            champ = self.version_of(CHAMPION)
            if champ is None:
                raise RegistryError(f"{self.model_name} has no champion to roll back")
            target = champ.tags.get("champion.previous")
            if not target:
                raise RegistryError(f"v{champ.version} has no earlier champion to roll back to")
            self.version(target)
            self.client.set_registered_model_alias(self.model_name, CHAMPION, target)
            self._tag(str(champ.version), {"champion.rolled_back_at": self._now(), "champion.rolled_back_by": by,
                                      "champion.rolled_back_reason": reason})
            self._record("rollback", target, by, reason, previous_champion=str(champ.version))
        return str(champ.version), target
