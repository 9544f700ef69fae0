"""The case state machine (民情流水线): one Enum of states, one table of transitions. Pure logic.

    pending_review ──confirm──▶ dispatched ──acknowledge──▶ handling ──feedback──▶ feedback
          │ reject                 │  ▲ return/redispatch       │ ledger                │ close (re-check passed)
          ▼                        ▼  │                          ▼                       ▼
       rejected                 returned                       ledger                 closed ──reopen──▶ dispatched
                                                                              feedback ──recheck_failed──▶ handling

Each open state has a clock and its owner: the department's in dispatched and handling, the re-check's in
feedback, and in pending_review and returned the command centre's own (``CENTRE_CLOCK``: a lead to confirm or
reject, a returned case to send on, within the category's ``review_service_level``).

``extend`` and ``escalate`` keep the state and change the deadline or the level; a department's
``request_extension`` (申请延期) waits for an operator's ``approve_extension`` or ``refuse_extension``.

What each action does besides its state, its *effect*, is in ``EFFECTS``: what it does to the
case's clock and which notice it sends. ``gateway.actions.perform`` applies both, for the API,
ingest and the clock alike.

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
    REQUEST_EXTENSION = "request_extension"  # 申请延期: a department asks for more time
    APPROVE_EXTENSION = "approve_extension"
    REFUSE_EXTENSION = "refuse_extension"


class Role(str, Enum):
    SYSTEM = "system"  # the gateway itself (camera re-check, clock)
    OPERATOR = "operator"  # command-centre staff, within their grid subtree
    DEPARTMENT = "department"  # the department the case is dispatched to
    ADMIN = "admin"


class TransitionError(ValueError):
    """The action is not allowed now; the message says what is."""


class Clock(str, Enum):
    """What an action does to the case's clock."""

    START = "start"  # the department's clock starts afresh: dispatched now, deadline from the service level, level 0
    RECHECK = "recheck"  # the department's clock stops at its feedback; the re-check's (核查) own deadline starts
    EXTEND = "extend"  # the running deadline moves later
    ESCALATE = "escalate"  # one level up; looked at again after another service level
    REVIEW = "review"  # the department's clock stops; the command centre's own (to send the case on) starts
    STOP = "stop"  # no deadline runs any more


class Notice(str, Enum):
    """What an action tells others over MQTT (a case-log row that the clock publishes)."""

    DISPATCHED = "dispatched"  # to the department: xl/v1/dispatch/{department}
    ESCALATE = "escalate"  # to the grid it was escalated to: xl/v1/escalations/{grid}


S, A, R = CaseState, Action, Role
OPEN_STATES = frozenset({S.PENDING_REVIEW, S.DISPATCHED, S.HANDLING, S.FEEDBACK, S.RETURNED})
CLOCK_STATES = frozenset({S.DISPATCHED, S.HANDLING, S.FEEDBACK})  # a deadline applies
DEPARTMENT_CLOCK = frozenset({S.DISPATCHED, S.HANDLING})  # the department's deadline runs (in feedback: the re-check's)
CENTRE_CLOCK = frozenset({S.PENDING_REVIEW, S.RETURNED})  # the command centre's own deadline runs (review_deadline)
UNDISPATCHED = frozenset({S.PENDING_REVIEW, S.REJECTED})  # never sent to a department: not theirs to see

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
    A.ESCALATE: (CLOCK_STATES | CENTRE_CLOCK, None, frozenset({R.SYSTEM, R.OPERATOR, R.ADMIN})),
    A.REQUEST_EXTENSION: (DEPARTMENT_CLOCK, None, frozenset({R.DEPARTMENT, R.ADMIN})),
    A.APPROVE_EXTENSION: (DEPARTMENT_CLOCK, None, frozenset({R.OPERATOR, R.ADMIN})),
    A.REFUSE_EXTENSION: (DEPARTMENT_CLOCK, None, frozenset({R.OPERATOR, R.ADMIN})),
}

# action -> (what it does to the clock, the notice it sends); actions not here touch neither
EFFECTS: dict[Action, tuple[Clock, Notice | None]] = {
    A.CONFIRM: (Clock.START, Notice.DISPATCHED),
    A.REDISPATCH: (Clock.START, Notice.DISPATCHED),
    A.REOPEN: (Clock.START, Notice.DISPATCHED),  # the problem is back: the department hears of it again
    A.RECHECK_FAILED: (Clock.START, Notice.DISPATCHED),  # back to the department, with a fresh deadline
    A.FEEDBACK: (Clock.RECHECK, None),
    A.EXTEND: (Clock.EXTEND, None),
    A.APPROVE_EXTENSION: (Clock.EXTEND, None),
    A.ESCALATE: (Clock.ESCALATE, Notice.ESCALATE),
    A.CLOSE: (Clock.STOP, None),
    A.REJECT: (Clock.STOP, None),
    A.LEDGER: (Clock.STOP, None),
    A.RETURN: (Clock.REVIEW, None),
}


def role_refused(role: Role | str, action: Action | str) -> str | None:
    """Why ``role`` never takes ``action``, whatever the case's state (the people who do named); None if it may.
    The API answers it 403 and the case page shows no such button, before any case is read.

    >>> role_refused(Role.DEPARTMENT, Action.CLOSE)
    'a department may not close a case (allowed: admin, operator)'
    >>> role_refused(Role.OPERATOR, Action.CLOSE) is None
    True
    """
    role, action = Role(role), Action(action)
    roles = TRANSITIONS[action][2]
    if role in roles:
        return None
    return f"a {role.value} may not {action.value} a case (allowed: {', '.join(sorted(r.value for r in roles - {R.SYSTEM}))})"


def transition(state: CaseState | str, action: Action | str, role: Role | str) -> CaseState:
    """The state after ``action`` by ``role``; raises TransitionError when not allowed (the state first: a role
    that never takes the action is refused before, by ``role_refused``)."""
    state, action, role = CaseState(state), Action(action), Role(role)
    sources, target, _ = TRANSITIONS[action]
    if state not in sources:
        allowed = ", ".join(sorted(s.value for s in sources))
        raise TransitionError(f"cannot {action.value} a case that is {state.value} (allowed from: {allowed})")
    if why := role_refused(role, action):
        raise TransitionError(why)
    return target or state


def effect(action: Action | str) -> tuple[Clock | None, Notice | None]:
    """What ``action`` does to the clock and which notice it sends.

    >>> effect(Action.REOPEN)
    (<Clock.START: 'start'>, <Notice.DISPATCHED: 'dispatched'>)
    >>> effect(Action.ACKNOWLEDGE)
    (None, None)
    """
    return EFFECTS.get(Action(action), (None, None))
