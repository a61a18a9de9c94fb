"""What the broker says this strategy holds, and how positions that vanished were closed.

The live loop never trusts its own memory of a position: at start and after every order it reads the
broker's positions, keeps those carrying its magic number, and derives the side it holds from them. A
position that was open at the last look and is gone now was closed by its stop-loss or take-profit, by
the loop itself, or by someone else; the closing deals say which, and their profit is what the
RiskManager books. Pure: records in (DataFrames or lists of dicts, as MT5RestClient or a fake returns them).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from engine.trading.sizing import VOLUME_EPS

POSITION_BUY, POSITION_SELL = 0, 1  # MT5 position types
DEAL_ENTRY_OUT = 1
# MT5 comments of closing deals: "[sl 51000.00]" / "[tp ...]" on a terminal, "sl" / "tp" in the simulator.
_STOP_PREFIXES = {"sl": "stop_loss", "[sl": "stop_loss", "tp": "take_profit", "[tp": "take_profit"}


def records(rows: Any) -> list[Mapping[str, Any]]:
    """A DataFrame or an iterable of mappings as a list of mappings."""
    if rows is None:
        return []
    if hasattr(rows, "itertuples"):
        if not len(rows):
            return []
        columns = [str(c) for c in rows.columns]
        # itertuples, not to_dict("records"): a tenth of the time on the few rows a broker returns
        return [dict(zip(columns, row, strict=True)) for row in rows.itertuples(index=False, name=None)]
    return list(rows)


@dataclass(frozen=True)
class Holding:
    """This strategy's open positions of one symbol (those with its magic number)."""

    tickets: Mapping[int, int] = field(default_factory=dict)  # ticket -> side (+1 long, -1 short)
    volumes: Mapping[int, float] = field(default_factory=dict)  # ticket -> lots
    foreign: int = 0  # positions of the symbol with another magic number (never touched)

    @property
    def net(self) -> float:
        return sum(self.tickets[t] * self.volumes[t] for t in self.tickets)

    @property
    def side(self) -> int:
        """+1, -1 or 0: the sign of the net position."""
        net = self.net
        return 1 if net > VOLUME_EPS else (-1 if net < -VOLUME_EPS else 0)

    def describe(self) -> dict[str, Any]:
        return {"side": self.side, "net_lots": round(self.net, 8), "tickets": {str(t): s for t, s in self.tickets.items()},
                "foreign": self.foreign}


def holding(positions: Any, symbol: str, magic: int) -> Holding:
    """The positions of ``symbol`` carrying ``magic``, from a broker's open positions."""
    tickets: dict[int, int] = {}
    volumes: dict[int, float] = {}
    foreign = 0
    for row in records(positions):
        if str(row.get("symbol", symbol)) != symbol:
            continue
        if int(row.get("magic") or 0) != magic:
            foreign += 1
            continue
        ticket = int(row["ticket"])
        tickets[ticket] = 1 if int(row["type"]) == POSITION_BUY else -1
        volumes[ticket] = float(row["volume"])
    return Holding(tickets, volumes, foreign)


@dataclass(frozen=True)
class Closed:
    """A position that vanished since the last look, and the deals that closed it."""

    ticket: int
    side: int
    reason: str  # stop_loss | take_profit | signal (closed by this loop) | external | unknown
    profit: float  # profit + commission + swap of its closing deals, in the account currency
    price: float | None  # volume-weighted price of the closing deals
    deals: tuple[int, ...]

    @property
    def stopped(self) -> bool:
        return self.reason in ("stop_loss", "take_profit")


def closed_positions(vanished: Mapping[int, int], deals: Iterable[Mapping[str, Any]],
                     own_prefix: str = "eng-") -> list[Closed]:
    """How each of ``vanished`` (ticket -> side) was closed, from the account's deal history."""
    by_position: dict[int, list[Mapping[str, Any]]] = {}
    for deal in deals:
        if int(deal.get("entry", -1)) == DEAL_ENTRY_OUT:
            by_position.setdefault(int(deal.get("position_id") or 0), []).append(deal)
    out = []
    for ticket, side in vanished.items():
        closing = by_position.get(ticket, [])
        if not closing:
            out.append(Closed(ticket, side, "unknown", 0.0, None, ()))
            continue
        volume = sum(float(d["volume"]) for d in closing)
        price = sum(float(d["price"]) * float(d["volume"]) for d in closing) / volume if volume > 0 else None
        profit = sum(float(d.get("profit") or 0) + float(d.get("commission") or 0) + float(d.get("swap") or 0)
                     for d in closing)
        out.append(Closed(ticket, side, _reason(str(closing[-1].get("comment") or ""), own_prefix), profit,
                          price, tuple(int(d["ticket"]) for d in closing)))
    return out


def _reason(comment: str, own_prefix: str) -> str:
    lowered = comment.strip().lower()
    for prefix, reason in _STOP_PREFIXES.items():
        if lowered == prefix or lowered.startswith(prefix + " ") or lowered.startswith(prefix + "]"):
            return reason
    if comment.startswith(own_prefix):
        return "signal"
    return "external"


__all__ = ["Closed", "Holding", "closed_positions", "holding", "records"]
