"""The case state machine (民情流水线): one Enum of states, one table of transitions. Pure logic.

    pending_review ──confirm──▶ dispatched ──acknowledge──▶ handling ──feedback──▶ feedback
          │ reject                 │  ▲ return/redispatch       │ ledger                │ close (re-check passed)
          ▼                        ▼  │                          ▼                       ▼
       rejected                 returned                       ledger                 closed ──reopen──▶ dispatched
                                                                              feedback ──recheck_failed──▶ handling

``extend`` and ``escalate`` keep the state and change the deadline or the level.

>>> transition(CaseState.DISPATCHED, Action.ACKNOWLEDGE, Role.DEPARTMENT)
<CaseState.HANDLING: 'handling'>
>>> transition(CaseState.CLOSED, Action.FEEDBACK, Role.DEPARTMENT)
Traceback (most recent call last):
...
gateway.workflow.TransitionError: cannot feedback a case that is closed (allowed from: dispatched, handling)
"""

from __future__ import annotations

from enum import Enum


class CaseState(str, Enum):
    PENDING_REVIEW = "pending_review"  # 待审核: a person confirms the machine's report
    DISPATCHED = "dispatched"  # 已派遣: the department's clock runs
    HANDLING = "handling"  # 处置中: the department acknowledged
    FEEDBACK = "feedback"  # 已反馈: the department says it is done; awaits re-check
    CLOSED = "closed"  # 已结案
    RETURNED = "returned"  # 已回退: sent back for re-dispatch
    LEDGER = "ledger"  # 挂账: a long-term matter
    REJECTED = "rejected"  # 已作废: not a real problem


class Action(str, Enum):
    CONFIRM = "confirm"
    REJECT = "reject"
    ACKNOWLEDGE = "acknowledge"
    FEEDBACK = "feedback"
    CLOSE = "close"
    RECHECK_FAILED = "recheck_failed"
    RETURN = "return"
    REDISPATCH = "redispatch"
    LEDGER = "ledger"
    REOPEN = "reopen"
    EXTEND = "extend"
    ESCALATE = "escalate"


class Role(str, Enum):
    SYSTEM = "system"  # the gateway itself (camera re-check, clock)
    OPERATOR = "operator"  # command-centre staff, within their grid subtree
    DEPARTMENT = "department"  # the department the case is dispatched to
    ADMIN = "admin"


class TransitionError(ValueError):
    """The action is not allowed now; the message says what is."""


S, A, R = CaseState, Action, Role
OPEN_STATES = frozenset({S.PENDING_REVIEW, S.DISPATCHED, S.HANDLING, S.FEEDBACK, S.RETURNED})
CLOCK_STATES = frozenset({S.DISPATCHED, S.HANDLING, S.FEEDBACK})  # a deadline applies

# action -> (states it applies to, the state it leads to (None: unchanged), roles allowed)
TRANSITIONS: dict[Action, tuple[frozenset[CaseState], CaseState | None, frozenset[Role]]] = {
    A.CONFIRM: (frozenset({S.PENDING_REVIEW}), S.DISPATCHED, frozenset({R.OPERATOR, R.ADMIN})),
    A.REJECT: (frozenset({S.PENDING_REVIEW}), S.REJECTED, frozenset({R.OPERATOR, R.ADMIN})),
    A.ACKNOWLEDGE: (frozenset({S.DISPATCHED}), S.HANDLING, frozenset({R.DEPARTMENT, R.ADMIN})),
    A.FEEDBACK: (frozenset({S.DISPATCHED, S.HANDLING}), S.FEEDBACK, frozenset({R.DEPARTMENT, R.ADMIN})),
    A.CLOSE: (frozenset({S.FEEDBACK}), S.CLOSED, frozenset({R.OPERATOR, R.ADMIN, R.SYSTEM})),
    A.RECHECK_FAILED: (frozenset({S.FEEDBACK}), S.HANDLING, frozenset({R.OPERATOR, R.ADMIN, R.SYSTEM})),
    A.RETURN: (frozenset({S.DISPATCHED, S.HANDLING}), S.RETURNED, frozenset({R.DEPARTMENT, R.OPERATOR, R.ADMIN})),
    A.REDISPATCH: (frozenset({S.RETURNED}), S.DISPATCHED, frozenset({R.OPERATOR, R.ADMIN})),
    A.LEDGER: (frozenset({S.HANDLING, S.RETURNED}), S.LEDGER, frozenset({R.OPERATOR, R.ADMIN})),
    A.REOPEN: (frozenset({S.CLOSED, S.FEEDBACK}), S.DISPATCHED, frozenset({R.SYSTEM, R.OPERATOR, R.ADMIN})),
    A.EXTEND: (frozenset(CLOCK_STATES), None, frozenset({R.OPERATOR, R.ADMIN})),
    A.ESCALATE: (frozenset(CLOCK_STATES), None, frozenset({R.SYSTEM, R.OPERATOR, R.ADMIN})),
}


def transition(state: CaseState | str, action: Action | str, role: Role | str) -> CaseState:
    """The state after ``action`` by ``role``; raises TransitionError when not allowed."""
    state, action, role = CaseState(state), Action(action), Role(role)
    sources, target, roles = TRANSITIONS[action]
    if state not in sources:
        allowed = ", ".join(sorted(s.value for s in sources))
        raise TransitionError(f"cannot {action.value} a case that is {state.value} (allowed from: {allowed})")
    if role not in roles:
        raise TransitionError(f"a {role.value} may not {action.value} a case "
                              f"(allowed: {', '.join(sorted(r.value for r in roles))})")
    return target or state
