"""How a workstream state looks: one icon and one theme variable per state.

Widgets that draw states (DAG, table, header) share this table so a state has
one colour everywhere; the colours are theme variables, so a theme change
recolours them all. Line-API widgets get them as component classes.
"""

from __future__ import annotations

from ...engine.states import ICONS, WsState

STATE_VARIABLE: dict[WsState, str] = {
    WsState.PENDING: "$text-muted",
    WsState.QUEUED: "$text-muted",
    WsState.PREPARING: "$secondary",
    WsState.RUNNING: "$primary",
    WsState.PAUSED: "$warning",
    WsState.FINISHING: "$accent",
    WsState.SUCCEEDED: "$success",
    WsState.FAILED: "$error",
    WsState.TIMED_OUT: "$error",
    WsState.KILLED: "$error",
    WsState.SKIPPED: "$text-muted",
    WsState.BLOCKED: "$error",
    WsState.INTERRUPTED: "$warning",
    WsState.NEEDS_INPUT: "$warning",
}


def state_class(state: WsState) -> str:
    """The component class naming a state's style, e.g. ``ws-state--timed_out``."""
    return f"ws-state--{state.value}"


STATE_CLASSES: frozenset[str] = frozenset(state_class(s) for s in WsState)


def state_css(prefix: str) -> str:
    """Component-class rules for every state, scoped under the widget type ``prefix``."""
    rules = []
    for state, variable in STATE_VARIABLE.items():
        bold = state in (WsState.RUNNING, WsState.FAILED, WsState.TIMED_OUT)
        weight = "bold" if bold else "none"
        rules.append(
            f"{prefix} > .{state_class(state)} {{ color: {variable}; text-style: {weight}; }}"
        )
    return "\n".join(rules)


def state_markup(state: WsState, text: str | None = None) -> str:
    """Content markup of a state's icon and name, coloured by theme variable."""
    label = text if text is not None else state.value.replace("_", " ")
    return f"[{STATE_VARIABLE[state]}]{ICONS[state]} {label}[/]"
