"""Every status and verdict name of the workbench, once: what a fit, a cell, a restart or a run
ended as. ``StrEnum`` members are ``str``: they compare equal to the strings the store holds
(``EMStatus.DEGENERATE == "degenerate"``), bind to SQLite and JSON as their value, and
``str(member)`` is the value, so stores written before this module read unchanged.

Nothing else in ``workbench/`` spells one of these names as a literal
(``tests/test_architecture.py`` checks it).
"""

from __future__ import annotations

from enum import StrEnum


class EMStatus(StrEnum):
    """How an EM run (one restart, or the returned fit) stopped. The compiled loop's codes
    0, 1, 2 (``workbench.em.loop``) are the positions in :data:`EM_STATUS_CODES`."""

    MAX_ITER = "max_iter"  # the iteration limit came first
    CONVERGED = "converged"  # the change of the objective fell below the tolerance
    DEGENERATE = "degenerate"  # a component collapsed (kind: DegenerateKind)


EM_STATUS_CODES: tuple[EMStatus, ...] = (EMStatus.MAX_ITER, EMStatus.CONVERGED, EMStatus.DEGENERATE)


class DegenerateKind(StrEnum):
    """Why an EM run is ``degenerate``. Stops of the loop: ``nan`` (a non-finite
    log-likelihood), ``weight`` (an expected count fell below min_count), ``covariance`` (a
    variance collapsed); verdicts on a final state: ``floor`` (a covariance held at the variance
    floor), ``spurious`` (a component with too few expected points). ``none``: not degenerate."""

    NONE = ""
    NAN = "nan"
    WEIGHT = "weight"
    COVARIANCE = "covariance"
    FLOOR = "floor"
    SPURIOUS = "spurious"


class BayesStatus(StrEnum):
    """The verdict on a Bayes fit (``workbench.bayes.diagnostics.classify`` documents the order
    of its checks; ``ok`` comes last: converged by every threshold)."""

    OK = "ok"
    NOT_CONVERGED = "not_converged"
    LABEL_SWITCHING = "label_switching"
    MULTIMODAL = "multimodal"
    DIVERGENT = "divergent"


class CellStatus(StrEnum):
    """Outcomes of a cell that produced no fit: ``error`` (an exception, or a fitter's own
    error status), ``timeout``, ``crashed`` (its worker process died) and ``skipped`` (its
    condition was stopped after consecutive failures)."""

    ERROR = "error"
    TIMEOUT = "timeout"
    CRASHED = "crashed"
    SKIPPED = "skipped"


# Cell statuses counted as errors of a condition (a streak of them stops it), and every status
# of a cell without a fit.
ERROR_STATUSES: tuple[CellStatus, ...] = (CellStatus.ERROR, CellStatus.TIMEOUT, CellStatus.CRASHED)
FAILED_STATUSES: tuple[CellStatus, ...] = (*ERROR_STATUSES, CellStatus.SKIPPED)
# Statuses of a fit that ended as it should (EM converged; Bayes converged by every check).
SUCCESS_STATUSES: tuple[StrEnum, ...] = (EMStatus.CONVERGED, BayesStatus.OK)
# Bayes statuses that mark a posterior geometry problem rather than a short chain.
BAYES_PROBLEMS: tuple[BayesStatus, ...] = (
    BayesStatus.MULTIMODAL,
    BayesStatus.LABEL_SWITCHING,
    BayesStatus.DIVERGENT,
)


class FailureKind(StrEnum):
    """The kind of one EM fit under the failure rule (``workbench.evaluate.judge``)."""

    BEST = "best"  # reached the best known optimum
    MINOR = "minor"  # a local optimum, every cluster where it was
    GROSS = "gross"  # a local optimum with a cluster merged, split or taken
    BELOW = "below"  # below the best known optimum, parameters not compared
    DEGENERATE = "degenerate"
    SADDLE = "saddle"  # the EM map's Jacobian has an eigenvalue above 1
    UNRESOLVED = "unresolved"  # still moving after polishing
    UNJUDGED = "unjudged"  # no reference: no verdict


# Kinds that count as a local optimum (a failure).
LOCAL_OPTIMUM_KINDS: tuple[FailureKind, ...] = (
    FailureKind.MINOR,
    FailureKind.GROSS,
    FailureKind.BELOW,
)


class RunOutcome(StrEnum):
    """How one ``workbench run`` invocation ended, as the ``runs`` table records it (a failed
    run's outcome is ``failed: <reason>``, an interrupted one may carry its signal)."""

    RUNNING = "running"
    FINISHED = "finished"
    INTERRUPTED = "interrupted"
